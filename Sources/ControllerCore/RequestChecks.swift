import AOSAPI
import RPCWire

/// A request the controller checks after decoding (JSON types and unknown arguments are the
/// decoder's): names, host names and sizes, so that bad input never reaches an agent. Every
/// refusal is `invalid_argument` naming the argument.
protocol CheckedRequest: APIRequest {
    func check(_ method: String) throws(ServiceError)
}

/// The rules (docs/rpc-api.md, "Common rules").
enum Check {
    static let maxBytes: Int64 = 1 << 50

    static func bad(_ method: String, _ text: String, _ key: String) -> ServiceError {
        .invalidArgument("\(method): \(text)", details: ["argument": .string(key)])
    }

    /// An LV name: not empty, and the characters and length rules of lvm2 (the agent checks the rest).
    static func lvName(_ s: String, _ method: String, key: String = "name") throws(ServiceError) {
        guard !s.isEmpty else { throw bad(method, "'\(key)' must not be empty", key) }
        try name(s, kind: "volume name", key: key, method: method)
    }

    /// The VG, when given.
    static func vg(_ s: String?, _ method: String) throws(ServiceError) {
        if let s { try name(s, kind: "volume group name", key: "vg", method: method) }
    }

    static func host(_ s: String, _ method: String, key: String = "host") throws(ServiceError) {
        guard !s.isEmpty else { throw bad(method, "'\(key)' must not be empty", key) }
        guard s.utf8.count <= 255, s.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }) else {
            throw bad(method, "'\(key)' is not a valid host name", key)
        }
    }

    /// `size_bytes`, or `size_gb` (GiB, as Cinder counts); exactly one of them, positive, ≤ 1 PiB.
    static func size(_ r: VolumeSizeRequest, _ method: String) throws(ServiceError) {
        switch (r.size_bytes, r.size_gb) {
        case (nil, nil): throw bad(method, "missing argument 'size_bytes' (or 'size_gb')", "size_bytes")
        case (.some, .some): throw bad(method, "give 'size_bytes' or 'size_gb', not both", "size_bytes")
        case (let b?, nil):
            guard b > 0, b <= maxBytes else { throw bad(method, "'size_bytes' must be between 1 and \(maxBytes)", "size_bytes") }
        case (nil, let g?):
            guard g > 0, g <= maxBytes >> 30 else { throw bad(method, "'size_gb' must be between 1 and \(maxBytes >> 30)", "size_gb") }
        }
    }

    static func name(_ s: String, kind: String, key: String, method: String) throws(ServiceError) {
        func fail(_ why: String) -> ServiceError { bad(method, "\(kind) \(why)", key) }
        if s.utf8.count > 127 { throw fail("is longer than 127 characters") }
        if s.hasPrefix("-") { throw fail("must not start with '-'") }
        if s == "." || s == ".." { throw fail("must not be '.' or '..'") }
        for u in s.unicodeScalars {
            switch u {
            case "a"..."z", "A"..."Z", "0"..."9", "+", "_", ".", "-": continue
            default: throw fail("may contain only A-Z a-z 0-9 + _ . - characters")
            }
        }
    }
}

extension VolumeSizeRequest: CheckedRequest {
    func check(_ method: String) throws(ServiceError) {
        try Check.lvName(name, method)
        try Check.size(self, method)
        try Check.vg(vg, method)
    }

    /// The size in bytes (after `check`: exactly one of the two, in range).
    var bytes: Int64 { size_bytes ?? (size_gb ?? 0) << 30 }
}

extension DeleteVolumeRequest: CheckedRequest {
    func check(_ method: String) throws(ServiceError) {
        try Check.lvName(name, method)
        try Check.vg(vg, method)
        if let mb = volume_clear_size_mb, mb < 0 {
            throw Check.bad(method, "'volume_clear_size_mb' must be >= 0", "volume_clear_size_mb")
        }
    }
}

extension ActivateVolumeRequest: CheckedRequest {
    func check(_ method: String) throws(ServiceError) {
        try Check.lvName(name, method)
        try Check.host(host, method)
        try Check.vg(vg, method)
    }
}

extension DeactivateVolumeRequest: CheckedRequest {
    func check(_ method: String) throws(ServiceError) {
        try Check.lvName(name, method)
        try Check.host(host, method)
        try Check.vg(vg, method)
    }
}

extension GetVolumeRequest: CheckedRequest {
    func check(_ method: String) throws(ServiceError) {
        try Check.lvName(name, method)
        try Check.vg(vg, method)
    }
}

extension VGSelectRequest: CheckedRequest {
    func check(_ method: String) throws(ServiceError) { try Check.vg(vg, method) }
}

extension NoArguments: CheckedRequest {
    func check(_ method: String) throws(ServiceError) {}
}

extension LockStatusRequest: CheckedRequest {
    func check(_ method: String) throws(ServiceError) { try Check.host(host, method) }
}

extension CopyVolumeRequest: CheckedRequest {
    func check(_ method: String) throws(ServiceError) {
        try Check.lvName(source, method, key: "source")
        try Check.lvName(target, method, key: "target")
        if source == target { throw Check.bad(method, "'target' must differ from 'source'", "target") }
        if size_bytes != nil || size_gb != nil {
            try Check.size(VolumeSizeRequest(name: target, size_bytes: size_bytes, size_gb: size_gb), method)
        }
        try Check.vg(vg, method)
        if let host { try Check.host(host, method) }
    }

    /// The target's size in bytes, nil for the source's (after `check`: at most one given, in range).
    var bytes: Int64? { size_bytes ?? size_gb.map { $0 << 30 } }
}

extension ListJobsRequest: CheckedRequest {
    func check(_ method: String) throws(ServiceError) {
        if let host { try Check.host(host, method) }
    }
}

extension ClusterJobRequest: CheckedRequest {
    func check(_ method: String) throws(ServiceError) {
        try Check.jobID(id, method)
        if let host { try Check.host(host, method) }
    }
}

extension Check {
    /// A job id: what the agents hand out (printable ASCII, no spaces), at most 128 bytes.
    static func jobID(_ s: String, _ method: String) throws(ServiceError) {
        guard !s.isEmpty else { throw bad(method, "'id' must not be empty", "id") }
        guard s.utf8.count <= 128, s.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }) else {
            throw bad(method, "'id' is not a job id", "id")
        }
    }
}
