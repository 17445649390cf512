import AOSConfig
import AgentCore
import Hypervisor
import Logging
import SharedLVM
import SimulatedLVM

/// `[agent] lvm_backend` made real: the host's LVM commands, or one host of the simulated
/// cluster (SimulatedLVM, for tests and demos), each with the device mapper and hypervisor
/// that go with it.
enum HostLVMChoice {
    static func make(
        configuration c: Configuration, hostId: Int, simulateReboot: Bool,
        logger: Logger
    ) throws(AgentStartupError) -> AgentHostLVM {
        let settings = AgentOptions.Settings(c)
        switch settings.lvmBackend {
        case .simulated:
            // Simulated hosts have no VMs of their own; only libvirt's test driver makes sense.
            let hypervisor: (any Hypervisor)? =
                settings.libvirtURI.hasPrefix("test:") ? VirshHypervisor(uri: settings.libvirtURI) : nil
            let file = c.string(AgentSimulationOptions.stateFile)
            let latency = Duration.milliseconds(c.int(AgentSimulationOptions.latencyMS))
            let cluster = file.isEmpty ? SimulatedCluster(latency: latency) : SimulatedCluster(stateFile: file, latency: latency)
            let size = UInt64(c.int(AgentSimulationOptions.vgSizeGB)) << 30
            for vg in settings.volumeGroups { cluster.ensureVolumeGroup(vg, sizeBytes: size) }
            let host = settings.messaging.host
            if simulateReboot { cluster.rebootHost(host) }
            logger.notice("using the SIMULATED LVM backend", metadata: ["state_file": "\(file.isEmpty ? "(memory)" : file)"])
            return AgentHostLVM(
                backend: SimulatedLVMBackend(cluster: cluster, hostName: host, hostId: hostId),
                dm: NoDeviceMapper(), hypervisor: hypervisor)
        case .real:
            guard !simulateReboot else { throw AgentStartupError("--simulate-reboot is only for the simulated backend") }
            var lvmLogger = Logger(label: "aos.lvm")
            lvmLogger.logLevel = logger.logLevel
            let backend = RealLVMBackend(
                timeouts: .init(
                    command: .seconds(settings.lvmTimeout),
                    lockStart: .seconds(max(settings.lvmTimeout, 300))),
                logger: lvmLogger)
            let hypervisor: (any Hypervisor)? = settings.libvirtURI.isEmpty ? nil : VirshHypervisor(uri: settings.libvirtURI)
            return AgentHostLVM(backend: backend, dm: DMSetup(), hypervisor: hypervisor)
        }
    }

    /// The device mapper alone, for `aos-agent fence`: a simulated host has no
    /// device-mapper devices of its own.
    static func deviceMapper(_ kind: LVMBackendKind) -> any DeviceMapping {
        switch kind {
        case .simulated: return NoDeviceMapper()
        case .real: return DMSetup(timeout: .seconds(5))
        }
    }
}
