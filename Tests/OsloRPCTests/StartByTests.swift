import Testing

@testable import OsloRPC
@testable import RPCWire

/// `aos_start_by` (RPCDeadline.startByPassed): a request taken after it is not run, because its
/// caller's call monitor has given up on it. Interop: test_chaos_controller.py.
@Suite struct StartByTests {
    @Test func passedOnlyAfterTheStampAndItsSkewAllowance() {
        let ctx: [String: JSONValue] = [RPCDeadline.startByKey: .double(1000)]
        #expect(!RPCDeadline.startByPassed(ctx, wallNow: 999))
        #expect(!RPCDeadline.startByPassed(ctx, wallNow: 1000.4))
        #expect(RPCDeadline.startByPassed(ctx, wallNow: 1000.6))
    }

    @Test func absentOrInvalidNeverRefuses() {
        #expect(!RPCDeadline.startByPassed([:], wallNow: 1e12))
        for bad: JSONValue in [.string("soon"), .double(-5), .double(0), .null, .double(.infinity)] {
            #expect(!RPCDeadline.startByPassed([RPCDeadline.startByKey: bad], wallNow: 1e12), "\(bad)")
        }
    }
}
