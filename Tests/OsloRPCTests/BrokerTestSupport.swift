import Foundation
import Logging

/// Set by scripts/test.sh, which starts a private broker before `swift test`.
let brokerURL = ProcessInfo.processInfo.environment["AOS_TEST_AMQP_URL"]

/// A logger that stays quiet: these tests provoke warnings on purpose.
func quietLogger(_ label: String = "oslo-rpc-test") -> Logger {
    var l = Logger(label: label)
    l.logLevel = .critical
    return l
}
