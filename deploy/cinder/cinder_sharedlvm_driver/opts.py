"""Configuration options of the shared-LVM driver (registered like any in-tree driver's).

Besides these, the driver reads Cinder's own backend options: `volume_group`, `lvm_type`,
`lvm_mirrors` (from cinder.volume.drivers.lvm), `volume_clear`, `volume_clear_size`,
`volume_backend_name`, `volume_dd_blocksize`, `reserved_percentage` (cinder.volume.driver).
`target_protocol` and `target_helper` are accepted and ignored: no iSCSI target is involved.
"""

from __future__ import annotations

from oslo_config import cfg

sharedlvm_opts = [
    cfg.StrOpt('agent_transport_url',
               secret=True,
               help='Transport URL of the RabbitMQ broker that aos-controller listens on, '
                    'in oslo.messaging syntax: amqp://USER:PASS@HOST:5672/VHOST (amqp:// and '
                    'rabbit:// both mean AMQP 0-9-1; several hosts separated by commas). '
                    'Empty: Cinder\'s own [DEFAULT] transport_url.'),
    cfg.IntOpt('agent_response_timeout',
               default=2888,
               min=1,
               help='Seconds to wait for the controller to answer a request that changes '
                    'something (create, extend, delete, activate, deactivate). The controller '
                    'passes this deadline on: an agent never runs a request after the driver '
                    'gave up.'),
    cfg.IntOpt('agent_call_monitor_timeout',
               default=60,
               min=0,
               help='Seconds without a heartbeat from aos-controller after which a call in '
                    'flight fails (oslo.messaging call_monitor_timeout): the controller sends '
                    'heartbeats while it works on a request, so a dead or stopped controller is '
                    'noticed in about this time even with a long agent_response_timeout. '
                    '0 disables the monitor (a call then waits its whole timeout).'),
    cfg.IntOpt('agent_query_timeout',
               default=60,
               min=1,
               help='Seconds to wait for read-only requests (pool stats for the scheduler, '
                    'the setup check, volume lookups); capped by agent_response_timeout.'),
    cfg.IntOpt('agent_copy_timeout',
               default=86400,
               min=1,
               help='Seconds a clone (create_cloned_volume) may take: the copy runs as a job on '
                    'an aos-agent (aos-controller copy_volume) and the driver polls it until it '
                    'succeeded or failed. When this passes first, the job is cancelled and the '
                    'clone fails. Count the time the copy may wait behind other jobs and the '
                    'agents\' volume_copy_bps_limit.'),
    cfg.StrOpt('agent_signing_key_file',
               help='Ed25519 private key (base64, mode 0600) the driver signs its requests to '
                    'aos-controller with; its public key goes in [auth] driver_public_keys of '
                    'aos.conf (make one with: aosctl auth keygen --private-key-file PATH). '
                    'Unset: requests are unsigned and a controller that enforces '
                    'authorization refuses them (docs/security.md).'),
    cfg.StrOpt('agent_controller_topic',
               default='aos-controller',
               help='RPC topic aos-controller serves ([controller] topic in aos.conf).'),
    cfg.StrOpt('agent_control_exchange',
               default='openstack',
               help='AMQP exchange of the controller\'s topic ([DEFAULT] control_exchange in '
                    'aos.conf). Not Cinder\'s control_exchange, which is "cinder".'),
    cfg.StrOpt('agent_cinder_host',
               help='Host name of the aos-agent on this cinder-volume node, used for image '
                    'copies. Default: the host part of this backend\'s host '
                    '(host@backend), i.e. [DEFAULT] host or the system host name.'),
]


def list_opts():
    """For oslo-config-generator (entry point `oslo.config.opts`)."""
    return [('backend_defaults', sharedlvm_opts)]
