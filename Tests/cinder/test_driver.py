"""SharedLVMDriver inside cinder's VolumeManager, against a real aos-controller and two real
aos-agents (simulated LVM, one shared VG) over the private broker.

Host A is a compute node and the cinder-volume node; host B is a compute node. Volumes and
attachments are real cinder objects in a sqlite database; attach and detach go through the
manager's attachment_update / attachment_delete, the RPCs cinder-api sends for nova.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import time
import uuid
from typing import Any

import pytest
from cinder import exception
from cinder.image import image_utils
from cinder.volume import volume_utils
from oslo_utils import importutils

from cinder_sharedlvm_driver import exception as sl_exc
from conftest import BACKEND, VG, active_on

pytestmark = pytest.mark.timeout(240)

GiB = 1 << 30


# ---- lifecycle -----------------------------------------------------------------------------


def test_setup_check_and_stats(manager, cluster, ctl):
    drv = manager.driver
    drv.check_for_setup_error()
    stats = drv.get_volume_stats(refresh=True)
    assert stats["volume_backend_name"] == BACKEND
    assert stats["storage_protocol"] == "local" and stats["multiattach"] is True
    (pool,) = stats["pools"]
    pool_stats = ctl("pool_stats", vg=VG)
    assert pool["pool_name"] == BACKEND and pool["backend_state"] == "up"
    assert pool["total_capacity_gb"] == round(pool_stats["total_capacity_gb"], 2) > 0
    assert 0 < pool["free_capacity_gb"] <= pool["total_capacity_gb"]
    assert pool["thick_provisioning_support"] is True and pool["thin_provisioning_support"] is False
    assert pool["multiattach"] is True
    # The manager's periodic report takes the same path.
    from cinder import context
    manager._report_driver_status(context.get_admin_context())
    assert manager.last_capabilities["pools"][0]["backend_state"] == "up"


def test_create_extend_delete_through_the_manager(volumes, manager, ctl):
    free_before = ctl("pool_stats", vg=VG)["free_bytes"]
    vol = volumes.new(size=2)
    assert vol.status == "available", vol.status
    lv = ctl("get_volume", vg=VG, name=vol.name)
    assert lv["size_bytes"] == 2 * GiB and lv["active_on"] == []  # inactive everywhere
    assert ctl("pool_stats", vg=VG)["free_bytes"] <= free_before - 2 * GiB

    manager.driver.extend_volume(vol, 3)
    assert ctl("get_volume", vg=VG, name=vol.name)["size_bytes"] == 3 * GiB

    manager.delete_volume(volumes.ctx, vol)
    with pytest.raises(Exception) as info:
        ctl("get_volume", vg=VG, name=vol.name)
    assert isinstance(info.value, sl_exc.LVNotFound) and isinstance(info.value, exception.VolumeNotFound)
    # Deleting again (a retry) is harmless.
    manager.driver.delete_volume(vol)


def test_delete_passes_volume_clear(manager, volumes, cinder_env, monkeypatch):
    """volume_clear / volume_clear_size from the backend section reach the controller."""
    seen: list[dict] = []
    real = manager.driver.client.call

    def spy(method: str, **kwargs: Any) -> Any:
        if method == "delete_volume":
            seen.append(kwargs)
        return real(method, **kwargs)

    monkeypatch.setattr(manager.driver.client, "call", spy)
    vol = volumes.new()
    manager.driver.delete_volume(vol)
    assert seen[-1]["volume_clear"] == "none" and seen[-1].get("volume_clear_size_mb") is None
    cinder_env.CONF.set_override("volume_clear", "zero", group=BACKEND)
    try:
        vol2 = volumes.new()
        # The simulated backend has no device to zero unless the LV is active somewhere; the
        # request itself must carry the settings.
        try:
            manager.driver.delete_volume(vol2)
        except sl_exc.SharedLVMError:
            pass
        assert seen[-1]["volume_clear"] == "zero" and seen[-1]["volume_clear_size_mb"] == 100
    finally:
        cinder_env.CONF.clear_override("volume_clear", group=BACKEND)
        manager.driver.delete_volume(vol2)


def test_create_larger_than_the_vg_is_insufficient_space(volumes, manager):
    vol = volumes.new(size=100000, create=False)
    with pytest.raises(sl_exc.InsufficientSpace) as info:
        manager.driver.create_volume(vol)
    assert "aosctl pool stats" in str(info.value) and "insufficient_space" in str(info.value)
    # Through the manager (no reschedule in this test) the volume ends in error.
    with pytest.raises(sl_exc.InsufficientSpace):
        manager.create_volume(volumes.ctx, vol, allow_reschedule=False)
    vol.refresh()
    assert vol.status == "error"


def test_exports_are_no_ops(manager, volumes):
    vol = volumes.new(create=False)
    assert manager.driver.create_export(volumes.ctx, vol, {"host": "x"}) is None
    assert manager.driver.ensure_export(volumes.ctx, vol) is None
    assert manager.driver.remove_export(volumes.ctx, vol) is None


# ---- attach / detach -------------------------------------------------------------------------


def test_attach_detach_exclusive(volumes, cluster, ctl):
    a = cluster.host_a
    vol = volumes.new()
    att, info = volumes.attach(vol, a)
    assert info["driver_volume_type"] == "local"
    assert info["device_path"] == f"/dev/{VG}/{vol.name}"
    assert att.attached_host == a and att.attach_status in ("attaching", "attached")
    assert active_on(ctl, vol) == {a: "exclusive"}

    volumes.detach(vol, att)
    assert active_on(ctl, vol) == {}
    assert vol.status == "available"
    volumes.mgr.delete_volume(volumes.ctx, vol)


def test_exclusive_holder_elsewhere_is_named(volumes, cluster, ctl, manager):
    """B cannot attach while A holds the LV exclusively; the error names A."""
    a, b = cluster.host_a, cluster.host_b
    vol = volumes.new()
    ctl("activate_volume", vg=VG, name=vol.name, host=a, mode="exclusive")  # e.g. a stale holder
    with pytest.raises(sl_exc.VolumeLockedByOtherHost) as info:
        manager.driver.initialize_connection(vol, {"host": b})
    text = str(info.value)
    assert a in text and "exclusive" in text and f"aosctl volume deactivate {vol.name}" in text
    assert isinstance(info.value, exception.VolumeBackendAPIException)
    # Through the manager (nova's attachment_update): cinder wraps it, the text survives.
    with pytest.raises(exception.VolumeBackendAPIException) as info:
        volumes.attach(vol, b)
    assert a in str(info.value)
    assert active_on(ctl, vol) == {a: "exclusive"}
    ctl("deactivate_volume", vg=VG, name=vol.name, host=a)


def test_multiattach_shared_on_two_hosts_and_back_to_exclusive(volumes, cluster, ctl):
    a, b = cluster.host_a, cluster.host_b
    vol = volumes.new(multiattach=True)
    assert vol.multiattach
    att1, _ = volumes.attach(vol, a)
    assert active_on(ctl, vol) == {a: "exclusive"}

    # A second instance on B: A's exclusive activation becomes shared, B joins shared.
    att2, info = volumes.attach(vol, b)
    assert info["device_path"] == f"/dev/{VG}/{vol.name}"
    assert active_on(ctl, vol) == {a: "shared", b: "shared"}

    # A third instance on A again: nothing changes.
    att3, _ = volumes.attach(vol, a)
    assert active_on(ctl, vol) == {a: "shared", b: "shared"}

    # B leaves: A is the only host left -> exclusive again.
    volumes.detach(vol, att2)
    assert active_on(ctl, vol) == {a: "exclusive"}

    # One of A's two attachments leaves: A still needs it.
    volumes.detach(vol, att1)
    assert active_on(ctl, vol) == {a: "exclusive"}

    volumes.detach(vol, att3)
    assert active_on(ctl, vol) == {}
    assert vol.status == "available"
    volumes.mgr.delete_volume(volumes.ctx, vol)


def test_live_migration_handover(volumes, cluster, ctl):
    """A non-multiattach volume of one instance: during a live migration the instance has an
    attachment on the source (A) and on the destination (B); both must open the device. After
    the source attachment goes, B holds it exclusively."""
    a, b = cluster.host_a, cluster.host_b
    instance = str(uuid.uuid4())
    vol = volumes.new()
    src, _ = volumes.attach(vol, a, instance=instance)
    assert active_on(ctl, vol) == {a: "exclusive"}
    dst, info = volumes.attach(vol, b, instance=instance)
    assert info["device_path"] == f"/dev/{VG}/{vol.name}"
    assert active_on(ctl, vol) == {a: "shared", b: "shared"}
    volumes.detach(vol, src)
    assert active_on(ctl, vol) == {b: "exclusive"}
    volumes.detach(vol, dst)
    assert active_on(ctl, vol) == {}
    volumes.mgr.delete_volume(volumes.ctx, vol)


def test_non_multiattach_volume_of_another_instance_is_refused(volumes, cluster, ctl, manager):
    a, b = cluster.host_a, cluster.host_b
    vol = volumes.new()
    att, _ = volumes.attach(vol, a)
    # A reserved attachment for another instance (cinder-api would normally refuse earlier).
    from cinder import objects
    other = objects.VolumeAttachment(volumes.ctx, volume_id=vol.id, instance_uuid=str(uuid.uuid4()),
                                     attach_status="reserved")
    other.create()
    vol.refresh()
    with pytest.raises(sl_exc.VolumeLockedByOtherHost) as info:
        manager.driver.initialize_connection(vol, {"host": b})
    assert "not multiattach" in str(info.value) and a in str(info.value)
    assert active_on(ctl, vol) == {a: "exclusive"}
    other.destroy()
    volumes.detach(vol, att)


def test_delete_of_an_attached_volume_is_busy(volumes, cluster, manager):
    a = cluster.host_a
    vol = volumes.new()
    att, _ = volumes.attach(vol, a)
    with pytest.raises(sl_exc.VolumeBusy) as info:
        manager.driver.delete_volume(vol)
    assert isinstance(info.value, exception.VolumeIsBusy) and a in str(info.value)
    volumes.detach(vol, att)
    manager.driver.delete_volume(vol)


def test_connector_without_host_is_invalid(manager, volumes):
    vol = volumes.new(create=False)
    with pytest.raises(exception.InvalidConnectorException):
        manager.driver.initialize_connection(vol, {"ip": "1.2.3.4"})


# ---- data path on the cinder-volume host ------------------------------------------------------


def test_copy_image_to_volume_runs_on_the_cinder_host(volumes, cluster, ctl, manager, monkeypatch):
    a = cluster.host_a  # the cinder-volume host
    assert manager.driver.cinder_host == a
    vol = volumes.new()
    calls: list[tuple[str, dict]] = []

    def fake_fetch_to_raw(context, image_service, image_id, dest, blocksize, size=None, **kw):
        calls.append((dest, active_on(ctl, vol)))

    monkeypatch.setattr(image_utils, "fetch_to_raw", fake_fetch_to_raw)
    manager.driver.copy_image_to_volume(volumes.ctx, vol, object(), "image-1")
    assert calls == [(f"/dev/{VG}/{vol.name}", {a: "exclusive"})]
    assert active_on(ctl, vol) == {}

    # A failing copy still releases the LV.
    def broken(*args, **kwargs):
        assert active_on(ctl, vol) == {a: "exclusive"}
        raise exception.ImageCopyFailure(reason="glance went away")

    monkeypatch.setattr(image_utils, "fetch_to_raw", broken)
    with pytest.raises(exception.ImageCopyFailure):
        manager.driver.copy_image_to_volume(volumes.ctx, vol, object(), "image-2")
    assert active_on(ctl, vol) == {}
    manager.driver.delete_volume(vol)


def test_copy_image_to_volume_attached_elsewhere_is_refused(volumes, cluster, ctl, manager, monkeypatch):
    b = cluster.host_b
    vol = volumes.new()
    att, _ = volumes.attach(vol, b)
    monkeypatch.setattr(image_utils, "fetch_to_raw", lambda *a, **k: pytest.fail("must not copy"))
    with pytest.raises(sl_exc.VolumeLockedByOtherHost) as info:
        manager.driver.copy_image_to_volume(volumes.ctx, vol, object(), "image-1")
    assert b in str(info.value)
    assert active_on(ctl, vol) == {b: "exclusive"}
    volumes.detach(vol, att)
    manager.driver.delete_volume(vol)


def test_upload_of_an_in_use_volume_shares_and_gives_back(volumes, cluster, ctl, manager, monkeypatch):
    a, b = cluster.host_a, cluster.host_b
    vol = volumes.new()
    att, _ = volumes.attach(vol, b)
    seen: list[dict] = []

    def fake_upload(context, image_service, image_meta, volume_path, volume, *args, **kwargs):
        assert volume_path == f"/dev/{VG}/{vol.name}"
        seen.append(active_on(ctl, vol))

    monkeypatch.setattr(volume_utils, "upload_volume", fake_upload)
    manager.driver.copy_volume_to_image(volumes.ctx, vol, object(), {"id": "img"})
    assert seen == [{a: "shared", b: "shared"}]
    assert active_on(ctl, vol) == {b: "exclusive"}
    volumes.detach(vol, att)
    manager.driver.delete_volume(vol)


def test_create_cloned_volume_is_a_copy_job(volumes, cluster, ctl, manager, monkeypatch):
    src = volumes.new(size=1)

    def no_local_copy(*args, **kwargs):
        raise AssertionError("a clone must not copy through the cinder-volume host")

    monkeypatch.setattr(volume_utils, "copy_volume", no_local_copy)
    clone = volumes.new(size=2, create=False)
    manager.driver.create_cloned_volume(clone, src)
    # The job is finished when the driver returns: the clone has its name and size, and
    # nothing is left active.
    assert ctl("get_volume", vg=VG, name=clone.name)["size_bytes"] == 2 * GiB
    assert active_on(ctl, src) == {} and active_on(ctl, clone) == {}
    (job,) = [j for j in ctl("list_jobs")["jobs"] if j["target"] == clone.name]
    assert job["kind"] == "copy" and job["source"] == src.name and job["state"] == "succeeded"

    # Failures arrive as the mapped exceptions, and leave no clone behind.
    missing = volumes.new(size=1, create=False)
    clone2 = volumes.new(size=1, create=False)
    with pytest.raises(sl_exc.LVNotFound):
        manager.driver.create_cloned_volume(clone2, missing)
    with pytest.raises(sl_exc.LVNotFound):
        ctl("get_volume", vg=VG, name=clone2.name)
    # The same clone again is the same (finished) job: nothing changes.
    manager.driver.create_cloned_volume(clone, src)
    other = volumes.new(size=1)
    with pytest.raises(sl_exc.VolumeSizeConflict, match="already_exists"):  # the target exists
        manager.driver.create_cloned_volume(other, src)
    for v in (src, clone, other):
        manager.driver.delete_volume(v)


def _snapshot(volumes, vol):
    from cinder import objects

    snap = objects.Snapshot(
        volumes.ctx, volume_id=vol.id, volume_size=vol.size, status="creating",
        project_id=volumes.ctx.project_id, user_id=volumes.ctx.user_id, display_name="snap")
    snap.create()
    return snap


def test_snapshots_are_full_copies_by_jobs(volumes, cluster, ctl, manager):
    from cinder_sharedlvm_driver import driver as sl_driver

    assert sl_driver.SNAPSHOTS_SUPPORTED
    vol = volumes.new(size=1)
    snap = _snapshot(volumes, vol)
    lv = manager.driver.snapshot_lv_name(snap)
    assert lv == f"_snapshot-{snap.id}", "LVM's reserved 'snapshot' prefix is escaped"
    manager.driver.create_snapshot(snap)
    assert ctl("get_volume", vg=VG, name=lv)["size_bytes"] == GiB
    (job,) = [j for j in ctl("list_jobs")["jobs"] if j["target"] == lv]
    assert job["kind"] == "copy" and job["source"] == vol.name and job["state"] == "succeeded"
    assert active_on(ctl, vol) == {}, "the source is released after the copy"

    # A volume from the snapshot, larger than it.
    restored = volumes.new(size=2, create=False)
    manager.driver.create_volume_from_snapshot(restored, snap)
    assert ctl("get_volume", vg=VG, name=restored.name)["size_bytes"] == 2 * GiB

    # Revert (the volume grew since): its LV is wiped and copied again from the snapshot.
    manager.driver.extend_volume(vol, 2)
    vol.size = 2
    manager.driver.revert_to_snapshot(None, vol, snap)
    assert ctl("get_volume", vg=VG, name=vol.name)["size_bytes"] == 2 * GiB
    jobs = ctl("list_jobs")["jobs"]
    if manager.driver.configuration.volume_clear != "none":
        assert any(j["kind"] == "wipe" and j["source"] == vol.name for j in jobs)
    assert any(j["kind"] == "copy" and j["source"] == lv and j["target"] == vol.name and j["state"] == "succeeded"
               for j in jobs)
    att, _ = volumes.attach(vol, cluster.host_a)
    with pytest.raises(sl_exc.SharedLVMError, match="detach it first"):
        manager.driver.revert_to_snapshot(None, vol, snap)
    volumes.detach(vol, att)

    # Deleting it: gone under its name at once (the wipe job clears it), and again is a no-op.
    manager.driver.delete_snapshot(snap)
    with pytest.raises(sl_exc.LVNotFound):
        ctl("get_volume", vg=VG, name=lv)
    manager.driver.delete_snapshot(snap)
    for v in (vol, restored):
        manager.driver.delete_volume(v)


def _sim_lvs(cluster) -> dict[str, Any]:
    """The simulated VG's LVs as the agents' shared state file has them (written atomically)."""
    return json.loads((cluster.tmp / "cluster.json").read_text())["vgs"][VG]["lvs"]


def _sim_data(cluster, lv: str) -> dict[int, int]:
    flat = _sim_lvs(cluster)[lv].get("data") or []  # a Swift [UInt64: UInt32]: key, value, ...
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _sim_write(cluster, lv: str, tag: int, mib: int) -> None:
    """A VM writes `tag` over the first `mib` MiB of `lv` (under the state file's lock)."""
    path = cluster.tmp / "cluster.json"
    with open(f"{path}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        doc = json.loads(path.read_text())
        entry = doc["vgs"][VG]["lvs"][lv]
        flat = entry.get("data") or []
        data = dict(zip(flat[::2], flat[1::2], strict=True))
        data.update({block: tag for block in range(mib)})
        entry["data"] = [x for kv in sorted(data.items()) for x in kv]
        tmp = path.with_name(path.name + ".test-tmp")
        tmp.write_text(json.dumps(doc, sort_keys=True))
        os.replace(tmp, path)


def test_snapshot_and_clone_of_a_volume_in_use_on_one_host(volumes, cluster, ctl, manager):
    """Attached on B (exclusive there): the copy runs on B from a short-lived COW snapshot,
    the attachment stays as it was, and the snapshot holds the data of its time."""
    b = cluster.host_b
    vol = volumes.new(size=1)
    att, _ = volumes.attach(vol, b)
    _sim_write(cluster, vol.name, 7, 4)
    snap = _snapshot(volumes, vol)
    lv = manager.driver.snapshot_lv_name(snap)
    manager.driver.create_snapshot(snap)
    (job,) = [j for j in ctl("list_jobs")["jobs"] if j["target"] == lv]
    assert job["host"] == b and job["state"] == "succeeded", job
    assert active_on(ctl, vol) == {b: "exclusive"}, "the VM's activation is untouched"
    assert not [n for n in _sim_lvs(cluster) if n.startswith("aos-cow-")], "the COW snapshot is gone"
    _sim_write(cluster, vol.name, 8, 4)
    assert _sim_data(cluster, lv) == {0: 7, 1: 7, 2: 7, 3: 7}

    clone = volumes.new(size=1, create=False)
    manager.driver.create_cloned_volume(clone, vol)
    (cjob,) = [j for j in ctl("list_jobs")["jobs"] if j["target"] == clone.name]
    assert cjob["host"] == b and _sim_data(cluster, clone.name) == {0: 8, 1: 8, 2: 8, 3: 8}
    assert not [n for n in _sim_lvs(cluster) if n.startswith("aos-cow-")]
    volumes.detach(vol, att)
    manager.driver.delete_snapshot(snap)
    for v in (vol, clone):
        manager.driver.delete_volume(v)


def test_snapshot_of_a_multiattached_volume_is_refused_clearly(volumes, cluster, ctl, manager):
    a, b = cluster.host_a, cluster.host_b
    vol = volumes.new(size=1, multiattach=True)
    att1, _ = volumes.attach(vol, a)
    att2, _ = volumes.attach(vol, b)
    assert active_on(ctl, vol) == {a: "shared", b: "shared"}
    snap = _snapshot(volumes, vol)
    with pytest.raises(sl_exc.SharedLVMError, match="active shared on") as e:
        manager.driver.create_snapshot(snap)
    assert e.value.aos_code == "busy" and "COW snapshot" in str(e.value)
    with pytest.raises(sl_exc.LVNotFound):
        ctl("get_volume", vg=VG, name=manager.driver.snapshot_lv_name(snap))
    clone = volumes.new(size=1, create=False)
    with pytest.raises(sl_exc.SharedLVMError, match="active shared on"):
        manager.driver.create_cloned_volume(clone, vol)
    assert active_on(ctl, vol) == {a: "shared", b: "shared"}, "nothing changed"
    volumes.detach(vol, att2)
    volumes.detach(vol, att1)
    manager.driver.delete_volume(vol)


def test_stats_count_snapshots_and_wiped_lvs_as_used(volumes, manager, ctl):
    """Snapshots are LVs of the VG and deleted volumes hold their extents until wiped: both are
    out of free_capacity_gb (in provisioned), and the wipes are also shown apart."""
    (before,) = manager.driver.get_volume_stats(refresh=True)["pools"]
    vol = volumes.new(size=1)
    snap = _snapshot(volumes, vol)
    manager.driver.create_snapshot(snap)
    (after,) = manager.driver.get_volume_stats(refresh=True)["pools"]
    assert after["total_capacity_gb"] == before["total_capacity_gb"]
    assert after["free_capacity_gb"] <= round(before["free_capacity_gb"] - 2, 2), (before, after)
    assert after["provisioned_capacity_gb"] >= round(before["provisioned_capacity_gb"] + 2, 2)
    assert after["total_volumes"] >= before["total_volumes"] + 2
    manager.driver.delete_snapshot(snap)
    manager.driver.delete_volume(vol)
    stats = ctl("pool_stats", vg=VG)
    (pool,) = manager.driver.get_volume_stats(refresh=True)["pools"]
    # What is still being wiped is used, not free: free + wiping never exceeds what was free.
    assert pool["wiping_capacity_gb"] == round(stats["wiping_bytes"] / GiB, 2)
    assert pool["free_capacity_gb"] == round(stats["free_capacity_gb"], 2)


class _JobScript:
    """The controller's side of a clone, scripted: copy_volume's job, then one answer per
    job_info call (a state, or an exception to raise); cancel_job calls are recorded."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.polls = 0
        self.cancelled: list[tuple[str, str | None]] = []

    def job(self, state: str, error: dict | None = None) -> dict:
        return {"id": "job-1", "host": "host-x", "kind": "copy", "state": state, "done_bytes": 0,
                "total_bytes": GiB, "error": error}

    def install(self, monkeypatch, client) -> None:
        monkeypatch.setattr(client, "copy_volume", lambda *a, **k: {"host": "host-x", "job": self.job("queued")})
        monkeypatch.setattr(client, "get_volume", lambda name, **k: {"name": name, "active_on": []})  # detached

        def job_info(job_id, *, what, host=None):
            assert (job_id, host) == ("job-1", "host-x")  # asked where the job runs
            answer = self.answers[min(self.polls, len(self.answers) - 1)]
            self.polls += 1
            if isinstance(answer, Exception):
                raise answer
            return answer

        monkeypatch.setattr(client, "job_info", job_info)
        monkeypatch.setattr(client, "cancel_job",
                            lambda job_id, *, what, host=None: self.cancelled.append((job_id, host)))


def test_clone_job_failure_maps_its_error_and_outlasts_a_missing_agent(manager, volumes, monkeypatch):
    script = _JobScript([])
    script.answers = [
        sl_exc.AgentUnavailable(data="agent away", aos_code="agent_unavailable"),
        script.job("running"),
        script.job("failed", {"code": "insufficient_space", "message": "VG full"}),
    ]
    script.install(monkeypatch, manager.driver.client)
    src, clone = volumes.new(size=1, create=False), volumes.new(size=1, create=False)
    with pytest.raises(sl_exc.InsufficientSpace, match="job job-1 on host-x failed: VG full"):
        manager.driver.create_cloned_volume(clone, src)
    assert script.polls == 3 and script.cancelled == []
    cancelled = _JobScript([])
    cancelled.answers = [cancelled.job("cancelled")]
    cancelled.install(monkeypatch, manager.driver.client)
    with pytest.raises(sl_exc.SharedLVMError, match="cancelled"):
        manager.driver.create_cloned_volume(clone, src)


def test_clone_job_past_agent_copy_timeout_is_cancelled(manager, volumes, monkeypatch, cinder_env):
    script = _JobScript([])
    script.answers = [script.job("running")]
    script.install(monkeypatch, manager.driver.client)
    cinder_env.CONF.set_override("agent_copy_timeout", 1, group=BACKEND)
    try:
        with pytest.raises(sl_exc.BackendTimeout, match="agent_copy_timeout"):
            manager.driver.create_cloned_volume(volumes.new(size=1, create=False),
                                                volumes.new(size=1, create=False))
    finally:
        cinder_env.CONF.clear_override("agent_copy_timeout", group=BACKEND)
    assert script.cancelled == [("job-1", "host-x")] and script.polls >= 1


def test_stats_report_wiping_capacity(manager, ctl):
    (pool,) = manager.driver.get_volume_stats(refresh=True)["pools"]
    wiping = ctl("pool_stats", vg=VG)["wiping_bytes"]
    assert pool["wiping_capacity_gb"] == round(wiping / GiB, 2)


# ---- failures ----------------------------------------------------------------------------------


def _driver_for(cinder_env, group: str, cluster, topic: bool = True):
    """A driver for another backend section of the test cinder.conf, built as the manager does
    (with the cluster's controller topic unless `topic` is False)."""
    from cinder.volume import configuration as config
    from cinder.volume import manager as volume_manager

    conf = config.Configuration(volume_manager.volume_backend_opts, config_group=group)
    drv = importutils.import_object(conf.volume_driver, configuration=conf,
                                    host=f"{cluster.host_a}@{group}")
    if topic:
        cinder_env.CONF.set_override("agent_controller_topic", cluster.topic, group=group)
    try:
        drv.do_setup(cinder_env.ctx)
    finally:
        cinder_env.CONF.clear_override("agent_controller_topic", group=group)
    return drv


def test_no_controller_is_controller_unreachable(cinder_env, cluster):
    drv = _driver_for(cinder_env, "sanlock-nocontroller", cluster, topic=False)
    start = time.monotonic()
    with pytest.raises(sl_exc.ControllerUnreachable) as info:
        drv.check_for_setup_error()
    assert time.monotonic() - start < 10
    text = str(info.value)
    assert "aos-nobody-listens" in text and "systemctl status aos-controller" in text
    assert "guest:guest" not in text  # password masked
    # The scheduler gets a "down" backend rather than an exception.
    stats = drv.get_volume_stats(refresh=True)
    assert stats["pools"][0]["backend_state"] == "down" and stats["pools"][0]["free_capacity_gb"] == 0
    drv.client.close()


def test_unknown_volume_group(cinder_env, cluster, manager):
    drv = _driver_for(cinder_env, "sanlock-novg", cluster)
    with pytest.raises(sl_exc.VolumeGroupUnknown) as info:
        drv.check_for_setup_error()
    assert "nosuchvg" in str(info.value) and isinstance(info.value, exception.VolumeGroupNotFound)
    drv.client.close()


def test_killed_agent_is_agent_unavailable(cinder_env, private_cluster):
    """Agent B dies: attaching on B fails within seconds with AgentUnavailable naming B;
    everything any host can serve still works through A."""
    c = private_cluster
    mgr = cinder_env.manager(c)
    try:
        drv = mgr.driver
        from conftest import Volumes
        vols = Volumes(cinder_env, mgr)
        vol = vols.new()
        c.agents[c.host_b].signal(signal.SIGKILL)
        c.agents[c.host_b].proc.wait(timeout=10)
        start = time.monotonic()
        with pytest.raises(sl_exc.AgentUnavailable) as info:
            drv.initialize_connection(vol, {"host": c.host_b})
        assert time.monotonic() - start < 15
        text = str(info.value)
        assert c.host_b in text and "systemctl status aos-agent" in text
        # Through the manager: the attachment fails, the message survives cinder's wrapping.
        with pytest.raises(exception.VolumeBackendAPIException) as info:
            vols.attach(vol, c.host_b)
        assert c.host_b in str(info.value) and "agent_unavailable" in str(info.value)
        # A still serves attach and the setup check (one live agent is enough).
        att, _ = vols.attach(vol, c.host_a)
        vols.detach(vol, att)
        drv.check_for_setup_error()
        mgr.delete_volume(cinder_env.ctx, vol)
    finally:
        mgr.driver.client.close()


def _wait_down(drv, *hosts: str, timeout: float = 30) -> None:
    """Until the controller's liveness view says every host in `hosts` is down."""
    deadline = time.monotonic() + timeout
    status: dict[str, str] = {}
    while time.monotonic() < deadline:
        status = {a["host"]: a["status"] for a in drv.client.list_agents(what="test")["agents"]}
        if all(status.get(h) == "down" for h in hosts):
            return
        time.sleep(0.2)  # polling interval, not synchronisation
    raise AssertionError(f"{hosts} not down after {timeout}s: {status}")


def test_detach_from_a_dead_host(cinder_env, private_cluster, caplog):
    """Evacuate: a detach from a host whose agent is down succeeds without force; the controller
    had A record the release (the tag in the VG) and says so, and the driver logs a warning
    naming the host. With no live agent at all nothing can be recorded: a normal detach fails,
    a forced one (force=True) still goes through and says so in the log."""
    c = private_cluster
    mgr = cinder_env.manager(c)
    try:
        from conftest import Volumes
        vols = Volumes(cinder_env, mgr)
        vol = vols.new()
        name = vol.name
        att, _ = vols.attach(vol, c.host_b)
        c.agents[c.host_b].signal(signal.SIGKILL)
        c.agents[c.host_b].proc.wait(timeout=10)
        _wait_down(mgr.driver, c.host_b)
        vol.refresh()
        caplog.set_level(logging.WARNING)
        assert mgr.driver.terminate_connection(vol, {"host": c.host_b}) is False
        warned = [r.getMessage() for r in caplog.records if "released, not deactivated" in r.getMessage()]
        assert warned and c.host_b in warned[0] and c.host_a in warned[0], caplog.text
        state = mgr.driver.client.get_volume(name, what="test")
        assert state["active_on"] == [], state
        # Again (cinder retries): still released, nothing changes.
        again = mgr.driver.client.deactivate(name, c.host_b, what="test")
        assert again["released"] is True and again["changed"] is False and again["released_by"] == c.host_a
        # No live agent left: the release cannot be recorded.
        c.agents[c.host_a].signal(signal.SIGKILL)
        c.agents[c.host_a].proc.wait(timeout=10)
        _wait_down(mgr.driver, c.host_a, c.host_b)
        with pytest.raises(sl_exc.AgentUnavailable, match="could record the release"):
            mgr.driver.terminate_connection(vol, {"host": c.host_b})
        caplog.clear()
        assert mgr.driver.terminate_connection(vol, {"host": c.host_b}, force=True) is False
        assert "Forced detach" in caplog.text
    finally:
        mgr.driver.client.close()
