import AOSAPI
import RPCWire
import Testing

/// Every request type decodes hostile arguments totally: a value or `invalid_argument`, never a
/// trap. NaN and infinity cannot come out of the wire parser, but the decoder must not rely on
/// that; integers at the edges of Int64 must not overflow a narrower field.
@Suite struct HostileArgumentTests {
    static let keys = [
        "vg", "name", "host", "size_bytes", "size_gb", "shared_update", "mode", "volume_clear", "volume_clear_size_mb",
        "step", "force", "sent_at", "report", "preferred_hosts",
    ]

    static let values: [JSONValue] = [
        .null, true, .int(0), .int(-1), .int(.max), .int(.min), .int(Int64(Int32.max) + 1), .double(.nan),
        .double(.infinity), .double(-.infinity), .double(1e300), .double(-0.0), .double(1.5), "", "x\u{0}y",
        .string(String(repeating: "é", count: 300)), [], [.null, .int(.min)], [:], ["host": .double(.nan), "vgs": [:]],
    ]

    func decodeAll(_ args: [String: JSONValue]) -> (ok: Int, refused: Int) {
        var (ok, refused) = (0, 0)
        func attempt<R: APIRequest>(_ type: R.Type) {
            do {
                _ = try R.decode(args, method: "m")
                ok += 1
            } catch {
                #expect(error.code == "invalid_argument", "\(R.self): \(error)")
                refused += 1
            }
        }
        attempt(VGRequest.self)
        attempt(LVRequest.self)
        attempt(NoArguments.self)
        attempt(CreateLVRequest.self)
        attempt(ExtendLVRequest.self)
        attempt(DeleteLVRequest.self)
        attempt(ActivateLVRequest.self)
        attempt(RecoverRequest.self)
        attempt(VolumeSizeRequest.self)
        attempt(DeleteVolumeRequest.self)
        attempt(ActivateVolumeRequest.self)
        attempt(DeactivateVolumeRequest.self)
        attempt(GetVolumeRequest.self)
        attempt(VGSelectRequest.self)
        attempt(LockStatusRequest.self)
        attempt(AgentAnnounceRequest.self)
        return (ok, refused)
    }

    @Test func everyKeyWithEveryHostileValueDecodesOrIsRefused() {
        var refused = 0
        for key in Self.keys {
            for value in Self.values {
                refused += decodeAll([key: value]).refused
                var withValid: [String: JSONValue] = ["vg": "vg1", "name": "volume-1", "host": "h"]
                withValid[key] = value
                refused += decodeAll(withValid).refused
            }
        }
        #expect(refused > 0)
    }

    @Test func outOfRangeIntegersAreRefusedNotTruncated() throws {
        #expect(throws: JSONValueDecodingError.self) {
            _ = try JSONValueDecoder().decode([Int32].self, from: [.int(Int64(Int32.max) + 1)])
        }
        #expect(throws: JSONValueDecodingError.self) {
            _ = try JSONValueDecoder().decode(UInt64.self, from: .int(-1))
        }
        #expect(throws: JSONValueDecodingError.self) {
            _ = try JSONValueDecoder().decode(Int.self, from: .double(.nan))
        }
        #expect(try JSONValueDecoder().decode(Double.self, from: .double(.infinity)) == .infinity)
    }

    /// The controller's job requests (copy_volume, list_jobs, job_info, cancel_job).
    @Test func controllerJobRequestsDecodeOrRefuse() {
        var refused = 0
        func attempt<R: APIRequest>(_ type: R.Type, _ args: [String: JSONValue]) {
            do {
                _ = try R.decode(args, method: "m")
            } catch {
                #expect(error.code == "invalid_argument", "\(R.self): \(error)")
                refused += 1
            }
        }
        for key in ["source", "target", "vg", "size_bytes", "size_gb", "verify", "host", "id"] {
            for value in Self.values {
                var copy: [String: JSONValue] = ["source": "volume-1", "target": "volume-2"]
                copy[key] = value
                attempt(CopyVolumeRequest.self, copy)
                attempt(ListJobsRequest.self, [key: value])
                var job: [String: JSONValue] = ["id": "job-1"]
                job[key] = value
                attempt(ClusterJobRequest.self, job)
            }
        }
        #expect(refused > 0)
    }
}
