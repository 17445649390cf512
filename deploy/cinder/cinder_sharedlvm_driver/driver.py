"""Cinder volume driver for one shared (lvmlockd + sanlock) LVM volume group.

Every volume is an LV `volume-<uuid>` of `volume_group`; the VG sits on a SAN LUN that every
compute node and the cinder-volume node see. LVM commands only act on the host where they run,
so the driver asks aos-controller (oslo.messaging RPC, `agent_transport_url`) and the
controller sends each request to the aos-agent of the right host:

* create / extend / delete: any live agent with the VG's lockspace started (extend: the host
  holding the LV when it is active);
* attach (`initialize_connection`): activate on the compute host, exclusively for a single
  attachment, shared when attachments on several hosts need it (multi-attach, live migration);
  the connection is `{'driver_volume_type': 'local', 'data': {'device_path': ...}}`;
* detach (`terminate_connection`): deactivate on that host unless another attachment there
  still uses it, and give exclusivity back to the one host left;
* image copies: activate on this cinder-volume host's own agent, copy with Cinder's helpers,
  deactivate (also on failure);
* clones: a copy job on the agent of a host that can read the source (controller's
  copy_volume), followed until it is finished.

See docs/cinder.md.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from cinder import exception, interface
from cinder.image import image_utils
from cinder.volume import configuration, driver, volume_utils
from cinder.volume.drivers import lvm as lvm_driver
from oslo_concurrency import lockutils
from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import units

import cinder_sharedlvm_driver
from cinder_sharedlvm_driver import client as sl_client
from cinder_sharedlvm_driver import exception as sl_exc
from cinder_sharedlvm_driver.opts import sharedlvm_opts

LOG = logging.getLogger(__name__)

CONF = cfg.CONF
CONF.register_opts(sharedlvm_opts, group=configuration.SHARED_CONF_GROUP)

# Snapshots are full copies made by agent copy jobs (detached volumes only, for now).
SNAPSHOTS_SUPPORTED = True

EXCLUSIVE = "exclusive"
SHARED = "shared"

# Job states after which nothing more happens (a failed wipe with next_attempt_at is retried,
# but the driver only waits for copies, which are not).
_FINAL_JOB_STATES = ("succeeded", "failed", "cancelled")

# Attachment states that no longer use the volume on their host.
_GONE_ATTACH_STATES = ("detached", "error_attaching", "deleted")


def _get(obj: Any, key: str, default: Any = None) -> Any:
    """Attribute or item access for Cinder objects, dicts and simple test doubles."""
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(key, default)
    try:
        return getattr(obj, key, default)
    except Exception:  # a Cinder object that cannot lazy-load the field
        LOG.debug("cannot read %s of %r", key, obj, exc_info=True)
        return default


def _attachment_host(attachment: Any) -> str | None:
    connector = _get(attachment, "connector") or {}
    host = connector.get("host") if isinstance(connector, dict) else None
    return host or _get(attachment, "attached_host") or None


@interface.volumedriver
class SharedLVMDriver(driver.VolumeDriver):
    """Shared LVM volume group through aos-controller and per-host aos-agents."""

    VERSION = cinder_sharedlvm_driver.__version__
    # ThirdPartySystems wiki page (required attribute of in-tree drivers).
    CI_WIKI_NAME = "aos-agent_CI"
    SUPPORTS_ACTIVE_ACTIVE = False
    STORAGE_PROTOCOL = "local"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Cinder's LVM options (volume_group, lvm_type, lvm_mirrors, ...) and ours.
        self.configuration.append_config_values(lvm_driver.volume_opts)
        self.configuration.append_config_values(sharedlvm_opts)
        self.backend_name = self.configuration.safe_get("volume_backend_name") or "sharedlvm"
        self.vg_name = self.configuration.volume_group
        self._client: sl_client.ControllerClient | None = None
        self._stats: dict[str, Any] = {}
        self._warned: set[str] = set()

    @classmethod
    def get_driver_options(cls) -> list:
        return sharedlvm_opts + lvm_driver.volume_opts + cls._get_oslo_driver_opts(
            "volume_backend_name", "volume_clear", "volume_clear_size", "volume_dd_blocksize",
            "reserved_percentage", "target_protocol", "target_helper")

    # ---- setup ------------------------------------------------------------------------------

    @property
    def client(self) -> sl_client.ControllerClient:
        if self._client is None:
            conf = self.configuration
            self._client = sl_client.ControllerClient(
                CONF, conf.agent_transport_url,
                topic=conf.agent_controller_topic, exchange=conf.agent_control_exchange,
                response_timeout=conf.agent_response_timeout,
                query_timeout=conf.agent_query_timeout, vg=self.vg_name,
                signing_key_file=conf.agent_signing_key_file,
                call_monitor_timeout=conf.agent_call_monitor_timeout)
        return self._client

    @property
    def cinder_host(self) -> str:
        """The agent host name of this cinder-volume node (for the data path)."""
        configured = self.configuration.safe_get("agent_cinder_host")
        if configured:
            return configured
        host = volume_utils.extract_host(self.host, "host") if self.host else None
        return host or CONF.host

    def _check_configuration(self) -> None:
        conf = self.configuration
        problems = []
        if conf.lvm_type == "thin":
            problems.append("lvm_type = thin is not supported on a shared (sanlock) VG: use "
                            "lvm_type = default (thick LVs)")
        if conf.lvm_mirrors:
            problems.append(f"lvm_mirrors = {conf.lvm_mirrors} is not supported: set "
                            "lvm_mirrors = 0 (mirror on the SAN)")
        if conf.volume_clear not in ("none", "zero"):
            problems.append(f"volume_clear = {conf.volume_clear} is not supported: none or zero")
        if not self.vg_name:
            problems.append("volume_group is empty")
        if problems:
            raise exception.InvalidConfigurationValue(
                value="; ".join(problems), option=f"[{self.backend_name}] section")

    def do_setup(self, context: Any) -> None:
        self._check_configuration()
        LOG.info("Shared LVM driver %(version)s: volume group %(vg)s through aos-controller "
                 "(topic %(topic)s at %(url)s), data-path host %(host)s",
                 {"version": self.VERSION, "vg": self.vg_name,
                  "topic": self.configuration.agent_controller_topic,
                  "url": self.client.url_for_humans, "host": self.cinder_host})

    def check_for_setup_error(self) -> None:
        """The controller answers, the VG is known to it, and at least one agent serving it
        is alive with the lockspace started."""
        self._check_configuration()
        what = f"check the shared LVM backend {self.backend_name}"
        agents = self.client.list_agents(what=what).get("agents", [])
        if not agents:
            raise sl_exc.AgentUnavailable(
                data=f"Cannot {what}: aos-controller knows no agent yet. Start aos-agent on "
                     f"the compute nodes and on this cinder-volume host ({self.cinder_host}); "
                     f"'aosctl agents' lists them.")
        serving = [a for a in agents if self.vg_name in (a.get("vgs") or {})]
        if not serving:
            served = sorted({vg for a in agents for vg in (a.get("vgs") or {})})
            raise sl_exc.VolumeGroupUnknown(
                data=f"Cannot {what}: no agent serves volume group {self.vg_name} (agents "
                     f"serve: {', '.join(served) or 'none'}). Set volume_group, or add it to "
                     f"[agent] volume_groups in aos.conf on every node.")
        live = [a for a in serving if a.get("status") == "alive"
                and (a.get("vgs") or {}).get(self.vg_name, {}).get("lockspace") == "started"]
        if not live:
            states = "; ".join(
                f"{a.get('host')}: {a.get('status')}, lockspace "
                f"{(a.get('vgs') or {}).get(self.vg_name, {}).get('lockspace')}" for a in serving)
            raise sl_exc.AgentUnavailable(
                data=f"Cannot {what}: no live agent has the lockspace of {self.vg_name} "
                     f"started ({states}). See 'aosctl agents' and docs/cinder.md "
                     f"(troubleshooting).")
        if not any(a.get("host") == self.cinder_host for a in live):
            LOG.warning("No live aos-agent for this cinder-volume host %(host)s serves %(vg)s: "
                        "image copies and clones will fail. Run aos-agent here, or set "
                        "agent_cinder_host to the agent's host name.",
                        {"host": self.cinder_host, "vg": self.vg_name})
        stats = self.client.pool_stats(what=what)
        if not stats.get("available", True):
            raise sl_exc.AgentUnavailable(
                data=f"Cannot {what}: {stats.get('error', {}).get('message', 'pool unavailable')}")

    # ---- helpers ---------------------------------------------------------------------------

    def local_path(self, volume: Any, vg: str | None = None) -> str:
        return f"/dev/{vg or self.vg_name}/{_get(volume, 'name')}"

    def _volume_lock(self, volume: Any):
        return lockutils.lock(f"cinder-sharedlvm-{_get(volume, 'id')}")

    @staticmethod
    def _active_on(state: dict) -> dict[str, str]:
        return {a["host"]: a["mode"] for a in state.get("active_on") or []}

    # ---- volume lifecycle ------------------------------------------------------------------

    def create_volume(self, volume: Any) -> None:
        name = _get(volume, "name")
        r = self.client.create_volume(name, _get(volume, "size"),
                                      what=f"create volume {_get(volume, 'id')} ({self.vg_name}/{name})")
        LOG.info("Created %(vg)s/%(lv)s (%(size)s bytes) through agent %(host)s",
                 {"vg": self.vg_name, "lv": name, "size": r.get("size_bytes"), "host": r.get("host")})

    def delete_volume(self, volume: Any) -> None:
        name = _get(volume, "name")
        clear = self.configuration.volume_clear
        r = self.client.delete_volume(
            name, what=f"delete volume {_get(volume, 'id')} ({self.vg_name}/{name})",
            volume_clear=clear,
            volume_clear_size_mb=self.configuration.volume_clear_size if clear != "none" else None)
        job = r.get("job") or {}
        LOG.info("Deleted %(vg)s/%(lv)s (changed=%(changed)s, volume_clear=%(clear)s%(wipe)s)",
                 {"vg": self.vg_name, "lv": name, "changed": r.get("changed"), "clear": clear,
                  "wipe": f"; wiped by job {job.get('id')} on {job.get('host')}" if job else ""})

    def extend_volume(self, volume: Any, new_size: int) -> None:
        name = _get(volume, "name")
        r = self.client.extend_volume(
            name, new_size, what=f"extend volume {_get(volume, 'id')} ({self.vg_name}/{name}) "
                                 f"to {new_size} GiB")
        LOG.info("Extended %(vg)s/%(lv)s to %(size)s bytes on %(host)s (refreshed on %(ref)s)",
                 {"vg": self.vg_name, "lv": name, "size": r.get("size_bytes"),
                  "host": r.get("host"), "ref": r.get("refreshed_hosts")})

    def create_export(self, context: Any, volume: Any, connector: Any) -> None:
        """No target: the LV is a local device on every host that sees the LUN."""
        return None

    def ensure_export(self, context: Any, volume: Any) -> None:
        return None

    def remove_export(self, context: Any, volume: Any) -> None:
        return None

    # ---- snapshots -------------------------------------------------------------------------
    #
    # A snapshot is an independent LV holding a full copy of its volume (a persistent
    # copy-on-write snapshot would tie the origin's lock to exclusive mode for as long as it
    # exists). The copy is an agent copy job, like a clone, and always a point-in-time copy:
    # - detached volume: the job holds it shared for the copy (an attach waits for the job);
    # - attached on one host (active exclusively there): the controller runs the job on that
    #   host, which copies from a short-lived COW snapshot (`lvcreate -s`) and drops it after;
    # - active shared (multi-attached, or during a live migration): refused with `busy`, since
    #   lvmlockd allows a COW snapshot only of an origin held exclusively (docs/cinder.md).

    @staticmethod
    def snapshot_lv_name(snapshot: Any) -> str:
        """Cinder's `snapshot-<id>` with LVM's reserved `snapshot` prefix escaped (as Cinder's
        LVM driver does): `_snapshot-<id>`."""
        name = _get(snapshot, "name")
        return f"_{name}" if name.startswith("snapshot") else name

    def create_snapshot(self, snapshot: Any) -> None:
        volume = _get(snapshot, "volume")
        src = _get(volume, "name") if volume is not None else f"volume-{_get(snapshot, 'volume_id')}"
        name = self.snapshot_lv_name(snapshot)
        what = (f"snapshot volume {_get(snapshot, 'volume_id')} as {_get(snapshot, 'id')} "
                f"({self.vg_name}/{src} -> {self.vg_name}/{name})")
        self._check_point_in_time(src, what=what)
        self._copy(src, name, size_gb=_get(snapshot, "volume_size"), what=what)

    def _check_point_in_time(self, src: str, *, what: str) -> None:
        """A copy of `src` is a point-in-time copy when the volume is detached or active
        exclusively on one host (the copy runs there, from a COW snapshot); active shared it
        is not: refused with `busy`."""
        holders = self._active_on(self.client.get_volume(src, what=what))
        shared = sorted(h for h, m in holders.items() if m != "exclusive")
        if shared:
            raise sl_exc.SharedLVMError(
                data=f"Cannot {what}: the volume is active shared on {', '.join(shared)} "
                     f"(multi-attached, or in a live migration); a point-in-time copy of an "
                     f"in-use volume needs a COW snapshot, and lvmlockd allows one only while a "
                     f"single host holds the volume exclusively. Detach it from all hosts but "
                     f"one and retry", aos_code="busy")

    def create_volume_from_snapshot(self, volume: Any, snapshot: Any) -> None:
        name = _get(volume, "name")
        src = self.snapshot_lv_name(snapshot)
        what = (f"create volume {_get(volume, 'id')} from snapshot {_get(snapshot, 'id')} "
                f"({self.vg_name}/{src} -> {self.vg_name}/{name})")
        self._copy(src, name, size_gb=_get(volume, "size"), what=what)

    def delete_snapshot(self, snapshot: Any) -> None:
        name = self.snapshot_lv_name(snapshot)
        clear = self.configuration.volume_clear
        r = self.client.delete_volume(
            name, what=f"delete snapshot {_get(snapshot, 'id')} ({self.vg_name}/{name})",
            volume_clear=clear,
            volume_clear_size_mb=self.configuration.volume_clear_size if clear != "none" else None)
        LOG.info("Deleted snapshot %(vg)s/%(lv)s (changed=%(changed)s)",
                 {"vg": self.vg_name, "lv": name, "changed": r.get("changed")})

    def revert_to_snapshot(self, context: Any, volume: Any, snapshot: Any) -> None:
        """The volume's LV is deleted (wiped as any deleted volume) and made again as a copy of
        the snapshot, at the volume's size (it may have grown since). Cinder has the volume
        `reverting` (detached) and, by default, took a backup snapshot first: if the copy fails,
        the data is in that snapshot. Without this method Cinder's generic revert copies through
        the cinder-volume host and, failing there, leaves the volume in `error`."""
        name = _get(volume, "name")
        src = self.snapshot_lv_name(snapshot)
        what = (f"revert volume {_get(volume, 'id')} to snapshot {_get(snapshot, 'id')} "
                f"({self.vg_name}/{src} -> {self.vg_name}/{name})")
        holders = self._active_on(self.client.get_volume(name, what=what))
        if holders:
            raise sl_exc.SharedLVMError(
                data=f"Cannot {what}: the volume is active on {', '.join(sorted(holders))}; "
                     f"detach it first", aos_code="busy")
        self.client.get_volume(src, what=what)  # the snapshot exists: checked before the delete
        clear = self.configuration.volume_clear
        self.client.delete_volume(
            name, what=what, volume_clear=clear,
            volume_clear_size_mb=self.configuration.volume_clear_size if clear != "none" else None)
        self._copy(src, name, size_gb=_get(volume, "size"), what=what)

    def _copy(self, src: str, name: str, *, size_gb: Any, what: str) -> dict:
        """A copy job from `src` into the new LV `name`, followed until it is finished."""
        r = self.client.copy_volume(src, name, size_gb=size_gb, what=what)
        job = r.get("job") or {}
        LOG.info("%(what)s runs as job %(job)s on %(host)s",
                 {"what": what[:1].upper() + what[1:], "job": job.get("id"), "host": r.get("host")})
        job = self._wait_for_job(job, what=what)
        LOG.info("Done: %(what)s (%(bytes)s bytes, job %(job)s on %(host)s)",
                 {"what": what, "bytes": job.get("done_bytes"), "job": job.get("id"), "host": job.get("host")})
        return job

    # ---- manage / unmanage -----------------------------------------------------------------
    #
    # An LV made outside Cinder (by the system this one replaces, or by hand) becomes a Cinder
    # volume by a rename to `volume-<id>`, as Cinder's LVM driver does, through aos-controller's
    # rename_volume: only an LV active on no host is renamed (a host with it active would keep
    # its device under the old name), and the agents rename only names that match their
    # `[agent] lv_name_pattern` (add a glob for the legacy names, e.g. `lv-*`). An LV whose size
    # is not whole GiB is extended to Cinder's rounded-up size, so that the volume's size is
    # the LV's (copies, snapshots and reverts use it). Unmanage changes nothing in the VG: the
    # LV keeps its `volume-<id>` name.

    _JOB_PREFIXES = ("aos-wipe-", "aos-copy-")
    _SNAPSHOT_PREFIXES = ("_snapshot-", "snapshot-")

    def _manage_source(self, existing_ref: Any, *, snapshot: bool = False) -> str:
        """The LV name of a manage reference (`{'source-name': LV}`, or the bare name Cinder
        passes for snapshots), refused when it cannot be a volume (or snapshot) to manage."""
        if isinstance(existing_ref, str):
            existing_ref = {"source-name": existing_ref}
        name = existing_ref.get("source-name") if isinstance(existing_ref, dict) else None
        if not name or not isinstance(name, str):
            raise exception.ManageExistingInvalidReference(
                existing_ref=existing_ref,
                reason=f"the reference must name the LV: {{'source-name': LV}} (an LV of volume "
                       f"group {self.vg_name}; 'cinder manageable-list' lists them)")
        if name.startswith(self._JOB_PREFIXES):
            raise exception.ManageExistingInvalidReference(
                existing_ref=existing_ref,
                reason=f"{self.vg_name}/{name} belongs to a job of an aos-agent (a deleted volume "
                       f"being wiped, or a copy not yet complete): it is no volume")
        if name.startswith(self._SNAPSHOT_PREFIXES):
            if not snapshot:
                raise exception.ManageExistingInvalidReference(
                    existing_ref=existing_ref,
                    reason=f"{self.vg_name}/{name} is a snapshot's LV, not a volume's "
                           f"('cinder snapshot-manage' manages it as a snapshot)")
            snap_id = volume_utils.extract_id_from_snapshot_name(name.lstrip("_"))
            if snap_id and self._snapshot_exists(snap_id):
                raise exception.ManageExistingAlreadyManaged(volume_ref=name)
        vol_id = volume_utils.extract_id_from_volume_name(name)
        if vol_id and volume_utils.check_already_managed_volume(vol_id):
            raise exception.ManageExistingAlreadyManaged(volume_ref=name)
        return name

    @staticmethod
    def _snapshot_exists(snap_id: str) -> bool:
        from cinder import context as cinder_context
        from cinder import objects
        try:
            objects.Snapshot.get_by_id(cinder_context.get_admin_context(), snap_id)
        except exception.SnapshotNotFound:
            return False
        return True

    def manage_existing_get_size(self, volume: Any, existing_ref: Any) -> int:
        """The LV's size in GiB, rounded up. Refused while the LV is active on a host."""
        name = self._manage_source(existing_ref)
        return self._manage_size(name, existing_ref,
                                 what=f"manage {self.vg_name}/{name} as volume {_get(volume, 'id')}")

    def _manage_size(self, name: str, existing_ref: Any, *, what: str) -> int:
        try:
            state = self.client.get_volume(name, what=what)
        except sl_exc.LVNotFound:
            raise exception.ManageExistingInvalidReference(
                existing_ref=existing_ref,
                reason=f"no LV {name} in volume group {self.vg_name} ('aosctl volume list')") from None
        self._refuse_active(state, what=what)
        size = int(state.get("size_bytes") or 0)
        return max(1, -(-size // units.Gi))

    def _refuse_active(self, state: dict, *, what: str) -> None:
        holders = self._active_on(state)
        if holders:
            where = ", ".join(f"{h} ({m})" for h, m in sorted(holders.items()))
            raise sl_exc.VolumeBusy(
                data=f"Cannot {what}: the LV is active on {where}; a volume is managed only while "
                     f"no host uses it. Stop what uses it there and run 'aosctl volume deactivate "
                     f"{state.get('name')} --host HOST', then manage it again", aos_code="busy")

    def manage_existing(self, volume: Any, existing_ref: Any) -> None:
        """Renames the LV to the volume's name (`volume-<id>`) and grows it to whole GiB."""
        name = self._manage_source(existing_ref)
        new_name = _get(volume, "name")
        self._manage_rename(name, new_name, _get(volume, "size"),
                            what=f"manage {self.vg_name}/{name} as volume {_get(volume, 'id')} "
                                 f"({new_name})")

    def _manage_rename(self, name: str, new_name: str, size_gb: Any, *, what: str) -> None:
        r = self.client.rename_volume(name, new_name, what=what)
        LOG.info("Managed %(vg)s/%(lv)s as %(new)s (renamed by the agent on %(host)s, "
                 "changed=%(changed)s)", {"vg": self.vg_name, "lv": name, "new": new_name,
                                          "host": r.get("host"), "changed": r.get("changed")})
        if not size_gb:
            size_gb = max(1, -(-int(r.get("size_bytes") or 0) // units.Gi))
        if int(r.get("size_bytes") or 0) < int(size_gb) * units.Gi:
            self.client.extend_volume(new_name, int(size_gb),
                                      what=f"{what}: grow it to {size_gb} GiB (whole GiB, as "
                                           f"Cinder counts)")

    def manage_existing_snapshot_get_size(self, snapshot: Any, existing_ref: Any) -> int:
        """As for a volume: any inactive LV holds a full copy, so it can be a snapshot."""
        name = self._manage_source(existing_ref, snapshot=True)
        return self._manage_size(
            name, existing_ref, what=f"manage {self.vg_name}/{name} as snapshot "
                                     f"{_get(snapshot, 'id')} of volume {_get(snapshot, 'volume_id')}")

    def manage_existing_snapshot(self, snapshot: Any, existing_ref: Any) -> None:
        """Renames the LV to the snapshot's name (`_snapshot-<id>`), grown to whole GiB."""
        name = self._manage_source(existing_ref, snapshot=True)
        new_name = self.snapshot_lv_name(snapshot)
        # Cinder sets the snapshot's size after this call: grow to the LV's rounded-up size.
        self._manage_rename(name, new_name, None,
                            what=f"manage {self.vg_name}/{name} as snapshot {_get(snapshot, 'id')} "
                                 f"({new_name})")

    def unmanage_snapshot(self, snapshot: Any) -> None:
        """Nothing changes in the VG: the LV stays, under its `_snapshot-<id>` name."""
        LOG.info("Unmanaged snapshot %(id)s: %(vg)s/%(lv)s stays in the volume group under this "
                 "name", {"id": _get(snapshot, "id"), "vg": self.vg_name,
                          "lv": self.snapshot_lv_name(snapshot)})

    def unmanage(self, volume: Any) -> None:
        """Nothing changes in the VG: the LV stays, under its `volume-<id>` name."""
        LOG.info("Unmanaged volume %(id)s: %(vg)s/%(lv)s stays in the volume group under this "
                 "name", {"id": _get(volume, "id"), "vg": self.vg_name, "lv": _get(volume, "name")})

    def get_manageable_volumes(self, cinder_volumes: list, marker: Any, limit: Any, offset: Any,
                               sort_keys: list, sort_dirs: list) -> list:
        """The VG's LVs as Cinder's manageable-list entries. Not safe to manage: Cinder's own
        volumes, LVs active on a host, snapshots' LVs (jobs' LVs are not listed by the
        controller). Whether the agents' `lv_name_pattern` covers a name shows at manage time."""
        state = self.client.list_volumes(what=f"list the LVs of volume group {self.vg_name}")
        cinder_ids = {_get(v, "id") for v in cinder_volumes or []}
        entries = []
        for lv in state.get("volumes") or []:
            name = lv.get("name") or ""
            if name.startswith(self._JOB_PREFIXES):
                continue
            size = int(lv.get("size_bytes") or 0)
            holders = self._active_on(lv)
            entry: dict[str, Any] = {
                "reference": {"source-name": name},
                "size": max(1, -(-size // units.Gi)),
                "cinder_id": None,
                "safe_to_manage": True,
                "reason_not_safe": None,
                # Cinder's ManageableVolume: a dict of strings (or None).
                "extra_info": {
                    "size_bytes": str(size),
                    "active_on": ", ".join(f"{h} ({m})" for h, m in sorted(holders.items())) or None,
                },
            }
            vol_id = volume_utils.extract_id_from_volume_name(name)
            if vol_id and vol_id in cinder_ids:
                entry.update(safe_to_manage=False, reason_not_safe="already managed",
                             cinder_id=vol_id)
            elif name.startswith(self._SNAPSHOT_PREFIXES):
                entry.update(safe_to_manage=False, reason_not_safe="snapshot LV")
            elif holders:
                entry.update(safe_to_manage=False,
                             reason_not_safe="active on " + ", ".join(sorted(holders)))
            entries.append(entry)
        return volume_utils.paginate_entries_list(entries, marker, limit, offset, sort_keys,
                                                  sort_dirs)

    # ---- groups ------------------------------------------------------------------------------
    #
    # Generic volume groups work through Cinder's generic path (the base driver's group methods
    # raise NotImplementedError, and the manager then creates, snapshots and deletes volume by
    # volume). A group snapshot is one snapshot after another, not crash-consistent across the
    # volumes unless they are detached; so group types that ask for consistent group snapshots
    # are refused clearly.

    def create_group(self, context: Any, group: Any) -> dict:
        if volume_utils.is_group_a_cg_snapshot_type(group):
            raise sl_exc.SharedLVMError(
                data=f"Cannot create group {_get(group, 'id')}: its group type asks for "
                     f"consistent group snapshots (consistent_group_snapshot_enabled), which the "
                     f"shared LVM backend cannot give: the snapshots of a group are taken one "
                     f"after another. Use a group type without that spec (docs/cinder.md, "
                     f"'Groups')", aos_code="invalid_argument")
        raise NotImplementedError()

    def delete_group(self, context: Any, group: Any, volumes: list) -> tuple:
        """Generic groups: Cinder's generic path (NotImplementedError). A group of a
        consistent-snapshot type exists only in `error` (create_group refused it), but Cinder
        would ask the driver's delete_consistencygroup for it and leave it undeletable: it is
        deleted here, volume by volume, as the generic path does."""
        if not volume_utils.is_group_a_cg_snapshot_type(group):
            raise NotImplementedError()
        model_update = {"status": "deleted"}
        volume_updates = []
        for volume in volumes or []:
            update = {"id": _get(volume, "id")}
            try:
                self.delete_volume(volume)
                update["status"] = "deleted"
            except exception.VolumeIsBusy:
                update["status"] = "available"
            except Exception:
                LOG.exception("Could not delete volume %(id)s of group %(group)s",
                              {"id": _get(volume, "id"), "group": _get(group, "id")})
                update["status"] = "error"
                model_update["status"] = "error"
            volume_updates.append(update)
        return model_update, volume_updates

    # ---- stats -----------------------------------------------------------------------------

    def get_volume_stats(self, refresh: bool = False) -> dict:
        if refresh or not self._stats:
            self._update_volume_stats()
        return self._stats

    def _update_volume_stats(self) -> None:
        conf = self.configuration
        pool = {
            "pool_name": self.backend_name,
            "total_capacity_gb": 0,
            "free_capacity_gb": 0,
            "provisioned_capacity_gb": 0,
            "reserved_percentage": conf.reserved_percentage,
            "location_info": f"SharedLVMDriver:{self.vg_name}:{conf.lvm_type}:0",
            "QoS_support": False,
            "thin_provisioning_support": False,
            "thick_provisioning_support": True,
            "max_over_subscription_ratio": 1.0,
            "total_volumes": 0,
            "wiping_capacity_gb": 0,
            "multiattach": True,
            # Nova attaches our volumes as `local` block devices, and its libvirt driver for
            # those (LibvirtVolumeDriver) cannot resize a guest disk: the base class's
            # extend_volume raises NotImplementedError. So Cinder must not extend in-use volumes.
            "online_extend_support": False,
            "backend_state": "down",
            "filter_function": self.get_filter_function(),
            "goodness_function": self.get_goodness_function(),
        }
        try:
            s = self.client.pool_stats(what=f"read the capacity of volume group {self.vg_name}")
        except sl_exc.SharedLVMError as e:
            LOG.warning("Volume group %(vg)s reported as down to the scheduler: %(err)s",
                        {"vg": self.vg_name, "err": e})
        else:
            if s.get("available", True):
                total = round(float(s.get("total_capacity_gb", 0)), 2)
                free = round(float(s.get("free_capacity_gb", 0)), 2)
                # Deleted volumes waiting for their wipe: used (not in free), shown apart.
                wiping = round(float(s.get("wiping_bytes", 0)) / units.Gi, 2)
                pool.update(total_capacity_gb=total, free_capacity_gb=free,
                            provisioned_capacity_gb=round(total - free, 2),
                            total_volumes=int(s.get("lv_count", 0)), backend_state="up",
                            wiping_capacity_gb=wiping)
                for warning in s.get("warnings") or []:
                    if warning not in self._warned:
                        self._warned.add(warning)
                        LOG.warning("Volume group %(vg)s: %(w)s", {"vg": self.vg_name, "w": warning})
            else:
                LOG.warning("Volume group %(vg)s unavailable: %(err)s",
                            {"vg": self.vg_name, "err": (s.get("error") or {}).get("message")})
        self._stats = {
            "volume_backend_name": self.backend_name,
            "vendor_name": "Open Source",
            "driver_version": self.VERSION,
            "storage_protocol": self.STORAGE_PROTOCOL,
            "multiattach": True,
            "sparse_copy_volume": False,
            "shared_targets": False,
            "pools": [pool],
        }

    # ---- attach path -----------------------------------------------------------------------

    def validate_connector(self, connector: Any) -> None:
        if not isinstance(connector, dict) or not connector.get("host"):
            raise exception.InvalidConnectorException(missing="host")

    def _other_attachment_hosts(self, volume: Any, host: str) -> dict[str, list]:
        """Hosts other than `host` with a live attachment of `volume` -> their attachments."""
        out: dict[str, list] = {}
        for a in _get(volume, "volume_attachment") or []:
            if _get(a, "attach_status") in _GONE_ATTACH_STATES:
                continue
            h = _attachment_host(a)
            if h and h != host:
                out.setdefault(h, []).append(a)
        return out

    @staticmethod
    def _pending_instance(volume: Any) -> str | None:
        """The instance of the attachment being made (reserved: no host yet), when unique."""
        pending = {_get(a, "instance_uuid") for a in _get(volume, "volume_attachment") or []
                   if not _attachment_host(a) and _get(a, "attach_status") not in _GONE_ATTACH_STATES}
        pending.discard(None)
        return pending.pop() if len(pending) == 1 else None

    def initialize_connection(self, volume: Any, connector: dict) -> dict:
        """Activates the LV on connector['host']: exclusive when it is the only host with an
        attachment, shared when attachments on other hosts need it too (multi-attach or a
        live migration); an exclusive activation elsewhere is converted to shared first."""
        self.validate_connector(connector)
        host = connector["host"]
        name = _get(volume, "name")
        what = f"attach volume {_get(volume, 'id')} ({self.vg_name}/{name}) on {host}"
        with self._volume_lock(volume):
            others = self._other_attachment_hosts(volume, host)
            if others and not _get(volume, "multiattach", False):
                instance = self._pending_instance(volume)
                foreign = sorted(h for h, atts in others.items()
                                 if instance and all(_get(a, "instance_uuid") not in (None, instance)
                                                     for a in atts))
                if foreign:
                    raise sl_exc.VolumeLockedByOtherHost(
                        data=f"Cannot {what}: the volume is not multiattach and is attached to "
                             f"another instance on {', '.join(foreign)}. Detach it there first "
                             f"or use a multiattach volume type.")
            if not others:
                self.client.activate(name, host, EXCLUSIVE, what=what)
                mode = EXCLUSIVE
            else:
                self._share_with(volume, others.keys(), what=what)
                self.client.activate(name, host, SHARED, what=what)
                mode = SHARED
        LOG.info("Volume %(id)s active %(mode)s on %(host)s", {"id": _get(volume, "id"),
                                                                 "mode": mode, "host": host})
        return {
            "driver_volume_type": "local",
            "data": {"device_path": self.local_path(volume)},
        }

    def _share_with(self, volume: Any, hosts: Any, *, what: str) -> list[str]:
        """Converts an exclusive activation on any of `hosts` to shared (a downgrade the holder
        can do while the device is open). Returns the hosts converted."""
        name = _get(volume, "name")
        state = self.client.get_volume(name, what=what)
        converted = []
        for h, mode in sorted(self._active_on(state).items()):
            if h in hosts and mode == EXCLUSIVE:
                LOG.info("Converting %(lv)s on %(host)s from exclusive to shared",
                         {"lv": name, "host": h})
                self.client.activate(name, h, SHARED, what=f"{what} (share it with {h})")
                converted.append(h)
        return converted

    def terminate_connection(self, volume: Any, connector: dict | None, **kwargs: Any) -> bool:
        """Deactivates the LV on connector['host'] unless another attachment there still uses
        it; when a single host is left with a shared activation, makes it exclusive again.
        A host whose agent is down (evacuate) gets its activation released by the controller
        (no force needed); `force` only matters when even that fails.
        Returns True when other attachments of the volume remain (Cinder's convention)."""
        name = _get(volume, "name")
        force = bool(kwargs.get("force"))
        attachments = [a for a in _get(volume, "volume_attachment") or []
                       if _get(a, "attach_status") not in _GONE_ATTACH_STATES]
        host = (connector or {}).get("host") if isinstance(connector, dict) else None
        if not host:
            LOG.warning("terminate_connection for %(id)s without a connector host: nothing to "
                        "deactivate", {"id": _get(volume, "id")})
            return len(attachments) > 1
        what = f"detach volume {_get(volume, 'id')} ({self.vg_name}/{name}) from {host}"
        with self._volume_lock(volume):
            same_host = [a for a in attachments if _attachment_host(a) == host]
            if len(same_host) > 1:
                LOG.info("Volume %(id)s stays active on %(host)s: %(n)d attachments there",
                         {"id": _get(volume, "id"), "host": host, "n": len(same_host)})
                return True
            try:
                r = self.client.deactivate(name, host, what=what)
            except sl_exc.AgentUnavailable as e:
                if not force:
                    raise
                LOG.error("Forced detach of %(id)s: could not deactivate it on %(host)s (%(err)s); "
                          "the LV may stay active there until its agent is back",
                          {"id": _get(volume, "id"), "host": host, "err": e})
                return len(attachments) > 1
            if r.get("released"):
                # Evacuate: nova detaches from a host that is gone. The controller had a live
                # agent record the release in the VG (the returning agent drops the activation);
                # sanlock keeps the dead host's LV lock until its lease expires.
                LOG.warning("Detach of %(id)s from %(host)s: the agent there is down, so the LV was "
                            "released, not deactivated (recorded in the VG by %(by)s). If %(host)s "
                            "still runs, its LV lock stays until it is stopped or fenced; its agent "
                            "gives the LV up when it returns",
                            {"id": _get(volume, "id"), "host": host, "by": r.get("released_by")})
            remaining = set(self._other_attachment_hosts(volume, host))
            active = self._active_on(r)
            if len(remaining) == 1:
                (last,) = remaining
                if active.get(last) == SHARED and set(active) == {last}:
                    try:
                        self.client.activate(name, last, EXCLUSIVE,
                                             what=f"{what} (make it exclusive again on {last})")
                        LOG.info("Volume %(id)s is exclusive again on %(host)s",
                                 {"id": _get(volume, "id"), "host": last})
                    except sl_exc.SharedLVMError as e:
                        # Shared on one host works; only the protection is weaker. Not a failure.
                        LOG.warning("Volume %(id)s stays shared on %(host)s: %(err)s",
                                    {"id": _get(volume, "id"), "host": last, "err": e})
        return len(attachments) > 1

    # ---- data path on this cinder-volume host ----------------------------------------------

    @contextlib.contextmanager
    def _activated_here(self, volume: Any, *, purpose: str, share_ok: bool) -> Iterator[str]:
        """Activates the LV on this host's agent for a copy and deactivates it afterwards
        (also when the copy fails). `share_ok`: for reading a volume that is in use elsewhere,
        share it with its holders instead of failing (and give exclusivity back after)."""
        host = self.cinder_host
        name = _get(volume, "name")
        what = f"{purpose}: activate {self.vg_name}/{name} on this cinder-volume host {host}"
        with self._volume_lock(volume):
            converted: list[str] = []
            try:
                r = self.client.activate(name, host, EXCLUSIVE, what=what)
            except sl_exc.VolumeLockedByOtherHost:
                if not share_ok:
                    raise
                state = self.client.get_volume(name, what=what)
                holders = set(self._active_on(state)) - {host}
                converted = self._share_with(volume, holders, what=what)
                r = self.client.activate(name, host, SHARED, what=what)
        changed = r.get("changed", True)
        try:
            yield self.local_path(volume)
        finally:
            if changed:
                with self._volume_lock(volume):
                    try:
                        self.client.deactivate(name, host, what=f"{purpose}: release {name} on {host}")
                    except sl_exc.SharedLVMError:
                        LOG.exception("Could not deactivate %(lv)s on %(host)s after %(p)s; "
                                      "release it with 'aosctl volume deactivate %(lv)s --host "
                                      "%(host)s'", {"lv": name, "host": host, "p": purpose})
                    for h in converted:
                        try:
                            self.client.activate(name, h, EXCLUSIVE,
                                                 what=f"{purpose}: give {name} back to {h}")
                        except sl_exc.SharedLVMError as e:
                            LOG.warning("%(lv)s stays shared on %(host)s: %(err)s",
                                        {"lv": name, "host": h, "err": e})
            else:
                LOG.debug("%(lv)s was already active on %(host)s before %(p)s: left active",
                          {"lv": name, "host": host, "p": purpose})

    def copy_image_to_volume(self, context: Any, volume: Any, image_service: Any, image_id: str,
                             disable_sparse: bool = False) -> None:
        with self._activated_here(volume, purpose=f"copy image {image_id} to volume "
                                                  f"{_get(volume, 'id')}", share_ok=False) as path:
            image_utils.fetch_to_raw(context, image_service, image_id, path,
                                     self.configuration.volume_dd_blocksize,
                                     size=_get(volume, "size"), disable_sparse=disable_sparse)

    def copy_volume_to_image(self, context: Any, volume: Any, image_service: Any,
                             image_meta: dict) -> None:
        with self._activated_here(volume, purpose=f"upload volume {_get(volume, 'id')} to an "
                                                  f"image", share_ok=True) as path:
            volume_utils.upload_volume(context, image_service, image_meta, path, volume)

    def create_cloned_volume(self, volume: Any, src_vref: Any) -> None:
        """The copy runs as a job on an aos-agent that can read the source (aos-controller's
        copy_volume): no data passes through this host, and the target carries its name only
        once the copy is complete. The driver polls the job until it is finished. An in-use
        source is copied as a snapshot is (from a COW snapshot on its exclusive holder; refused
        while it is active shared)."""
        src_name = _get(src_vref, "name")
        name = _get(volume, "name")
        what = (f"clone volume {_get(src_vref, 'id')} into {_get(volume, 'id')} "
                f"({self.vg_name}/{src_name} -> {self.vg_name}/{name})")
        self._check_point_in_time(src_name, what=what)
        self._copy(src_name, name, size_gb=_get(volume, "size"), what=what)

    def _wait_for_job(self, job: dict, *, what: str) -> dict:
        """Polls `job_info` until the job succeeded (its last state is returned) or failed,
        was cancelled or `agent_copy_timeout` passed (the job is cancelled then): raises the
        exception of the job's error code. A controller or agent that is briefly away does
        not end the wait."""
        job_id = job.get("id")
        host = job.get("host")
        if not job_id:
            raise sl_exc.SharedLVMError(data=f"Cannot {what}: aos-controller returned no job",
                                        aos_code="internal")
        timeout = float(self.configuration.safe_get("agent_copy_timeout") or 86400)
        deadline = time.monotonic() + timeout
        interval = 0.2
        while job.get("state") not in _FINAL_JOB_STATES:
            if time.monotonic() >= deadline:
                try:
                    self.client.cancel_job(job_id, host=host, what=f"cancel job {job_id} of {what}")
                except sl_exc.SharedLVMError:
                    LOG.exception("Could not cancel job %(job)s on %(host)s; cancel it with "
                                  "'aosctl jobs cancel %(job)s'", {"job": job_id, "host": host})
                raise sl_exc.BackendTimeout(
                    data=f"Cannot {what}: job {job_id} on {host} did not finish within "
                         f"{timeout:.0f} s (agent_copy_timeout; it was {job.get('state')}, "
                         f"{job.get('done_bytes')} of {job.get('total_bytes')} bytes); it was "
                         f"cancelled", aos_code="timed_out")
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
            interval = min(interval * 2, 5.0)
            try:
                job = self.client.job_info(job_id, host=host, what=f"follow job {job_id} of {what}")
            except (sl_exc.AgentUnavailable, sl_exc.ControllerUnreachable,
                    sl_exc.BackendTimeout) as e:
                LOG.warning("Job %(job)s: no answer this time (%(err)s); still waiting",
                            {"job": job_id, "err": e})
        if job.get("state") == "succeeded":
            return job
        err = job.get("error") or {}
        code = err.get("code") or ("cancelled" if job.get("state") == "cancelled" else "internal")
        cls = sl_exc.CODE_TO_EXCEPTION.get(code, sl_exc.SharedLVMError)
        raise cls(data=f"Cannot {what}: job {job_id} on {host} {job.get('state')}: "
                       f"{err.get('message') or 'no error reported'} [{code}]", aos_code=code)
