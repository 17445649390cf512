// swift-tools-version:6.1
// aos-agent: shared-LVM (lvmlockd + sanlock) agent system for OpenStack.
// Module graph (dependencies point one way; each target declares exactly what it imports):
//   HostSupport (leaf, no dependencies: threads, durable files, async locks, retry policy)
//   HostSupport <- HostCommands (the command runner, on swift-subprocess)
//   CRabbitMQ, HostSupport <- AMQPClient <- OsloRPC -> RPCWire (pure wire format)
//   RPCWire <- AOSAPI (the API table: methods, traits, typed requests/responses, wire error codes)
//   AOSConfig (leaf), AOSAPI <- AOSAuth (with OsloRPC) and AOSRuntime (with OsloRPC: startup plumbing)
//   HostSupport <- AOSMetrics (swift-prometheus: bootstrap + exposition) <- AOSRuntime; the libraries
//   (OsloRPC, SharedLVM, AgentCore, ControllerCore) record through swift-metrics' CoreMetrics only
//   HostCommands <- SharedLVM <- SimulatedLVM, Hypervisor, LVMTestSupport (test targets only)
//   AgentCore = SharedLVM + Hypervisor + OsloRPC + AOSAPI + AOSAuth + AOSRuntime (any LVMBackend);
//   aos-agent picks the backend by [agent] lvm_backend: RealLVMBackend or SimulatedLVM
//   ControllerCore = OsloRPC + AOSAPI + AOSAuth + AOSRuntime (no LVM)
//   executables (aos-agent, aos-controller, aosctl, aos-bench, aos-rpc-peer) are thin.
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
]

let package = Package(
    name: "aos-agent",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "aos-agent", targets: ["aos-agent"]),
        .executable(name: "aos-controller", targets: ["aos-controller"]),
        .executable(name: "aosctl", targets: ["aosctl"]),
        .executable(name: "aos-bench", targets: ["aos-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.0", traits: []),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        // Ed25519 request signatures for callers that cannot set AMQP's user_id (oslo.messaging).
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        // Metrics: the libraries record through swift-metrics' CoreMetrics API (no-ops until a
        // program bootstraps a backend); AOSMetrics bootstraps swift-prometheus 2.x (CoreMetrics
        // and swift-atomics only: no SwiftNIO) and exposes it.
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
    ],
    targets: [
        // C shim over Debian's librabbitmq-dev (0.11). Only AMQPClient imports it.
        .systemLibrary(
            name: "CRabbitMQ",
            pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"])]
        ),
        // Host plumbing with no LVM and no AMQP in it, and no dependencies: named OS threads,
        // durable files, async locks and one-shot values that honour cancellation, the retry
        // policy, sd_notify. A leaf AMQPClient can depend on.
        .target(name: "HostSupport", swiftSettings: strict),
        // Running host commands (lvm, dmsetup, virsh, dd): argv only, a minimal environment,
        // timeouts. Apart from HostSupport so that programs without commands (controller,
        // aosctl) do not link swift-subprocess.
        .target(
            name: "HostCommands",
            dependencies: ["HostSupport", .product(name: "Subprocess", package: "swift-subprocess")],
            swiftSettings: strict
        ),
        .target(
            name: "AMQPClient",
            dependencies: ["CRabbitMQ", "HostSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // Pure oslo.messaging wire format: envelope, messages, failures, dispatch rules.
        .target(name: "RPCWire", swiftSettings: strict),
        .target(
            name: "OsloRPC",
            dependencies: [
                "AMQPClient", "RPCWire", .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        .target(name: "AOSConfig", swiftSettings: strict),
        // The Prometheus backend of swift-metrics, bootstrapped in one place for both servers,
        // and its exposition: node_exporter's textfile collector and a minimal, bounded HTTP
        // listener (GET /metrics only, plain sockets on one thread).
        .target(
            name: "AOSMetrics",
            dependencies: [
                "HostSupport", .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        // The API both servers and aosctl share: each method with its traits (who may call it,
        // how), typed requests and responses, and every wire error code with its exception
        // class and CLI exit status.
        .target(name: "AOSAPI", dependencies: ["RPCWire"], swiftSettings: strict),
        // Who sent a request (broker-checked user_id or an Ed25519 signature) and whether that
        // role may call that method in that way: the servers' admission policy.
        .target(
            name: "AOSAuth",
            dependencies: ["OsloRPC", "RPCWire", "AOSAPI", "AOSConfig", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        // Startup plumbing shared by the executables (--config/--set, config loading, logging,
        // console, the broker connection).
        .target(
            name: "AOSRuntime",
            dependencies: ["AOSConfig", "AMQPClient", "OsloRPC", "AOSMetrics", .product(name: "Logging", package: "swift-log"),
                           .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "CoreMetrics", package: "swift-metrics")],
            swiftSettings: strict
        ),
        .target(
            name: "SharedLVM",
            dependencies: [
                "HostCommands", "HostSupport", .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"), .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        // The simulated LVM cluster (`[agent] lvm_backend = simulated`): lvmlockd's lock rules
        // in memory or in a JSON file shared by several agent processes; for demos and tests.
        .target(
            name: "SimulatedLVM",
            dependencies: ["SharedLVM", "HostCommands", "HostSupport"],
            swiftSettings: strict
        ),
        // Test support, for test targets only (never linked into an executable): the LVM
        // behaviour suite every backend must pass and the scripted command executor.
        .target(
            name: "LVMTestSupport",
            dependencies: ["SharedLVM", "HostCommands"],
            swiftSettings: strict
        ),
        // The VMs on this host that use LVs (libvirt through `virsh` by argv), for recovery.
        .target(
            name: "Hypervisor",
            dependencies: ["SharedLVM", "HostCommands"],
            swiftSettings: strict
        ),
        .target(
            name: "AgentCore",
            dependencies: ["OsloRPC", "RPCWire", "SharedLVM", "Hypervisor", "AOSConfig", "AOSRuntime", "AMQPClient", "AOSAuth", "AOSAPI",
                           "HostSupport", "HostCommands", .product(name: "Logging", package: "swift-log"),
                           .product(name: "CoreMetrics", package: "swift-metrics")],
            swiftSettings: strict
        ),
        .target(
            name: "ControllerCore",
            dependencies: ["OsloRPC", "RPCWire", "AOSConfig", "AOSRuntime", "AMQPClient", "AOSAuth", "AOSAPI",
                           .product(name: "Logging", package: "swift-log"), .product(name: "CoreMetrics", package: "swift-metrics")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "aos-agent",
            dependencies: ["AOSRuntime", "AgentCore", "AOSConfig", "SharedLVM", "SimulatedLVM", "Hypervisor", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "aos-controller",
            dependencies: ["AOSRuntime", "ControllerCore", "AOSConfig", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "aosctl",
            dependencies: ["AOSRuntime", "OsloRPC", "RPCWire", "AOSConfig", "AMQPClient", "AOSAuth", "AOSAPI",
                           .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "aos-bench",
            dependencies: ["OsloRPC", "RPCWire", "AMQPClient", "AOSAuth", "AOSAPI", "AgentCore", "SimulatedLVM",
                           .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // A small RPC peer used by the Python interop and resilience tests.
        .executableTarget(
            name: "aos-rpc-peer",
            dependencies: ["AOSRuntime", "OsloRPC", "RPCWire", "AMQPClient", "AOSAuth", "AOSAPI",
                           .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            swiftSettings: strict
        ),
        .testTarget(name: "AMQPClientTests", dependencies: ["AMQPClient"], swiftSettings: strict),
        .testTarget(name: "RPCWireTests", dependencies: ["RPCWire"], exclude: ["FuzzCorpus"], swiftSettings: strict),
        .testTarget(name: "OsloRPCTests", dependencies: ["OsloRPC", "RPCWire", "AMQPClient", .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
        .testTarget(name: "AOSConfigTests", dependencies: ["AOSConfig"], swiftSettings: strict),
        .testTarget(name: "AOSAuthTests", dependencies: ["AOSAuth", "AOSAPI", "OsloRPC", "RPCWire"], swiftSettings: strict),
        .testTarget(name: "AOSAPITests", dependencies: ["AOSAPI", "RPCWire", "SharedLVM"], swiftSettings: strict),
        .testTarget(
            name: "AOSMetricsTests",
            dependencies: ["AOSMetrics", .product(name: "CoreMetrics", package: "swift-metrics"),
                           .product(name: "Prometheus", package: "swift-prometheus")],
            swiftSettings: strict),
        .testTarget(name: "HostSupportTests", dependencies: ["HostSupport"], swiftSettings: strict),
        .testTarget(name: "HostCommandsTests", dependencies: ["HostCommands"], swiftSettings: strict),
        .testTarget(name: "SharedLVMTests", dependencies: ["SharedLVM", "HostCommands", "LVMTestSupport"], swiftSettings: strict),
        .testTarget(name: "SimulatedLVMTests", dependencies: ["SimulatedLVM", "SharedLVM", "LVMTestSupport"], swiftSettings: strict),
        .testTarget(name: "HypervisorTests", dependencies: ["Hypervisor", "SharedLVM", "HostCommands", "LVMTestSupport"], swiftSettings: strict),
        .testTarget(name: "AgentCoreTests", dependencies: ["AgentCore", "SharedLVM", "SimulatedLVM", "LVMTestSupport", "Hypervisor", "HostSupport", "HostCommands", "AOSConfig",
                                                          "AOSRuntime", "AMQPClient", "RPCWire", "AOSAuth", "AOSAPI"], swiftSettings: strict),
        .testTarget(name: "ControllerCoreTests", dependencies: ["ControllerCore", "OsloRPC", "RPCWire", "AOSAuth", "AOSAPI",
                                                              .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
    ]
)
