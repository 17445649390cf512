/// Where an extend runs, decided from the activation map (pure; see docs/rpc-api.md).
public enum ExtendPlan: Sendable, Equatable {
    /// Inactive everywhere: any live agent with the lockspace started (failover allowed).
    case anyHost
    /// Active exclusively on `host`: only that host holds the LV lock.
    case onHolder(String)
    /// Active shared: `lvextend --lockopt shupdate` on `primary`, then `lvchange --refresh`
    /// on each of `refresh` so every holder sees the new size.
    case sharedUpdate(primary: String, refresh: [String])
    /// A holder's agent is down: nothing is changed (its device would keep the old size).
    case holderDown(String)

    public static func plan(
        activations: [Activation], preferred: [String],
        isDown: (String) -> Bool
    ) -> ExtendPlan {
        if activations.isEmpty { return .anyHost }
        if let down = activations.first(where: { isDown($0.host) }) { return .holderDown(down.host) }
        if activations.count == 1, activations[0].mode == .exclusive { return .onHolder(activations[0].host) }
        // Shared (or an inconsistent map with several holders): shared update on the preferred holder.
        let hosts = activations.map(\.host).sorted { a, b in
            (preferred.firstIndex(of: a) ?? preferred.count, a) < (preferred.firstIndex(of: b) ?? preferred.count, b)
        }
        return .sharedUpdate(primary: hosts[0], refresh: Array(hosts.dropFirst()))
    }
}

/// Text for an activation list: "host-a (exclusive)", "host-a, host-b (shared)".
func describe(_ activations: [Activation]) -> String {
    let ex = activations.filter { $0.mode == .exclusive }.map(\.host)
    let sh = activations.filter { $0.mode == .shared }.map(\.host)
    var parts: [String] = []
    if !ex.isEmpty { parts.append("exclusively on \(ex.joined(separator: ", "))") }
    if !sh.isEmpty { parts.append("shared on \(sh.joined(separator: ", "))") }
    return parts.joined(separator: " and ")
}
