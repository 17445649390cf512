import AOSAPI
import AOSAuth
import Testing

@testable import AgentCore

/// Every method the agent serves has an admission rule, and "mutating" means the same thing
/// to the service (refused until ready) and to admission (calls on the own queue only).
@Suite struct AgentPolicyCoverageTests {
    @Test func everyAgentMethodHasARule() {
        let policy = Policies.agent(host: "h")
        for m in AgentMethod.allCases {
            let rule = policy.rules[m.rawValue]
            #expect(rule != nil, "no admission rule for \(m.rawValue)")
            #expect(rule?.mutating == m.isMutating, "\(m.rawValue): mutating differs")
            #expect(rule?.directedOnly == m.isMutating, "\(m.rawValue): a state change must be directed")
            // release_lv speaks for another host on the controller's liveness view: the controller's alone.
            // The drift audit's methods are the operator's (aosctl audit).
            let expected: Set<Role> =
                m == .releaseLV ? [.controller] : (m == .auditReport || m == .auditFix) ? [.admin] : [.controller, .admin]
            #expect(rule?.callers == expected, "\(m.rawValue)")
        }
        #expect(Set(policy.rules.keys) == Set(AgentMethod.allCases.map(\.rawValue)))
    }
}
