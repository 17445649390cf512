import AOSAPI
import AOSAuth
import OsloRPC
import RPCWire
import Testing

/// `release_lv` (evacuate) speaks for another host: only the controller may call it, and only
/// as a directed call, like every state change.
@Suite struct ReleaseAdmissionTests {
    let admission = Admission(policy: Policies.agent(host: "node1"), configuration: AuthConfiguration())
    let args: [String: JSONValue] = ["vg": "vg1", "name": "volume-1", "host": "node2"]

    @Test func onlyTheControllerMayRelease() {
        #expect(admission.check(context("release_lv", user: "aos-controller"), args) == nil)
        for user in ["aos-admin", "aos-driver", "aos-agent-node2", "aos-agent-node1", "guest"] {
            #expect(code(admission.check(context("release_lv", user: user), args)) == "not_authorized", "user \(user)")
        }
        #expect(reason(admission.check(context("release_lv", user: "aos-admin"), args)) == "role")
    }

    @Test func neverACastNorATopicCopy() {
        #expect(admission.check(context("release_lv", user: "aos-controller", route: .topic, routingKey: "aos-agent"), args) != nil)
        #expect(admission.check(context("release_lv", user: "aos-controller", call: false), args) != nil)
    }
}
