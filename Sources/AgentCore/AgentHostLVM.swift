import Hypervisor
import SharedLVM

/// What the agent drives on its host: the LVM backend, device-mapper access, and the
/// hypervisor whose VMs lockspace recovery stops and starts (nil: recovery leaves VMs
/// alone). AgentCore does not choose: the executable builds it for `[agent] lvm_backend`.
public struct AgentHostLVM: Sendable {
    public var backend: any LVMBackend
    public var dm: any DeviceMapping
    public var hypervisor: (any Hypervisor)?

    public init(backend: any LVMBackend, dm: any DeviceMapping, hypervisor: (any Hypervisor)?) {
        self.backend = backend
        self.dm = dm
        self.hypervisor = hypervisor
    }
}
