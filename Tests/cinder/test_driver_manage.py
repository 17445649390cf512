"""manage_existing / unmanage / get_manageable_volumes and the group refusal of SharedLVMDriver
inside cinder's VolumeManager, against a real aos-controller and two aos-agents (simulated
LVM, one shared VG; the agents' default lv_name_pattern `volume-*, _snapshot-*`, so the
"legacy" LVs here are named `volume-legacy-…`: not a Cinder volume id)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from cinder import exception

from cinder_sharedlvm_driver import exception as sl_exc
from conftest import VG

pytestmark = pytest.mark.timeout(240)

GiB = 1 << 30


def _legacy_lv(ctl: Any, size_bytes: int) -> str:
    """An LV made outside Cinder (through the controller, as another tool would)."""
    name = f"volume-legacy-{uuid.uuid4().hex[:8]}"
    ctl("create_volume", vg=VG, name=name, size_bytes=size_bytes)
    return name


def _managing(volumes: Any) -> Any:
    """A volume row as cinder-api makes it for `cinder manage` (status managing, no size yet)."""
    vol = volumes.new(size=0, create=False)
    vol.status = "managing"
    vol.save()
    return vol


def test_manage_renames_the_lv_and_rounds_it_up_to_whole_gib(volumes, manager, ctl):
    name = _legacy_lv(ctl, 3 * GiB // 2)
    vol = _managing(volumes)
    manager.manage_existing(volumes.ctx, vol, {"source-name": name})
    vol.refresh()
    assert vol.status == "available" and vol.size == 2, (vol.status, vol.size)
    lv = ctl("get_volume", vg=VG, name=vol.name)
    assert lv["size_bytes"] == 2 * GiB and lv["active_on"] == []
    with pytest.raises(sl_exc.LVNotFound):
        ctl("get_volume", vg=VG, name=name)

    # Unmanage: the LV stays under the volume's name; it can be managed again as another volume.
    manager.delete_volume(volumes.ctx, vol, unmanage_only=True)
    assert ctl("get_volume", vg=VG, name=vol.name)["size_bytes"] == 2 * GiB
    again = _managing(volumes)
    assert manager.driver.manage_existing_get_size(again, {"source-name": vol.name}) == 2
    manager.manage_existing(volumes.ctx, again, {"source-name": vol.name})
    again.refresh()
    assert again.status == "available" and again.size == 2
    assert ctl("get_volume", vg=VG, name=again.name)["size_bytes"] == 2 * GiB
    manager.driver.delete_volume(again)


def test_manage_of_an_lv_active_on_a_host_is_refused_clearly(volumes, manager, ctl, cluster):
    name = _legacy_lv(ctl, GiB)
    ctl("activate_volume", vg=VG, name=name, host=cluster.host_b, mode="exclusive")
    vol = _managing(volumes)
    with pytest.raises(sl_exc.VolumeBusy) as info:
        manager.driver.manage_existing_get_size(vol, {"source-name": name})
    assert f"active on {cluster.host_b} (exclusive)" in str(info.value)
    assert "aosctl volume deactivate" in str(info.value)
    with pytest.raises(sl_exc.VolumeBusy):
        manager.manage_existing(volumes.ctx, vol, {"source-name": name})
    vol.refresh()
    assert vol.status == "error_managing"
    # The rename itself refuses too (a race past the size check): the controller's map.
    with pytest.raises(sl_exc.VolumeBusy, match="deactivate it there before renaming"):
        manager.driver.manage_existing(vol, {"source-name": name})
    assert ctl("get_volume", vg=VG, name=name)["active_on"] == [{"host": cluster.host_b, "mode": "exclusive"}]
    ctl("deactivate_volume", vg=VG, name=name, host=cluster.host_b)
    manager.driver.delete_volume({"name": name, "id": "cleanup"})


def test_bad_references(volumes, manager, ctl):
    drv = manager.driver
    vol = _managing(volumes)
    existing = volumes.new(size=1)
    for ref, match in (({}, "source-name"), ({"source-name": "aos-wipe-1234"}, "job"),
                       ({"source-name": "_snapshot-1234"}, "snapshot"),
                       ({"source-name": "volume-legacy-missing"}, "no LV")):
        with pytest.raises(exception.ManageExistingInvalidReference, match=match):
            drv.manage_existing_get_size(vol, ref)
    with pytest.raises(exception.ManageExistingAlreadyManaged):
        drv.manage_existing_get_size(vol, {"source-name": existing.name})
    drv.delete_volume(existing)


def test_get_manageable_volumes(volumes, manager, ctl, cluster):
    drv = manager.driver
    legacy = _legacy_lv(ctl, GiB + 1)
    busy = _legacy_lv(ctl, GiB)
    ctl("activate_volume", vg=VG, name=busy, host=cluster.host_a, mode="exclusive")
    mine = volumes.new(size=1)
    entries = drv.get_manageable_volumes([mine], None, 1000, 0, ["reference"], ["asc"])
    by_name = {e["reference"]["source-name"]: e for e in entries}
    assert by_name[legacy]["safe_to_manage"] is True and by_name[legacy]["size"] == 2
    assert by_name[legacy]["reason_not_safe"] is None and by_name[legacy]["cinder_id"] is None
    assert by_name[busy]["safe_to_manage"] is False
    assert by_name[busy]["reason_not_safe"] == f"active on {cluster.host_a}"
    assert by_name[busy]["extra_info"] == {"size_bytes": str(GiB), "active_on": f"{cluster.host_a} (exclusive)"}
    lv_bytes = ctl("get_volume", vg=VG, name=legacy)["size_bytes"]  # whole extents: > 1 GiB
    assert by_name[legacy]["extra_info"] == {"size_bytes": str(lv_bytes), "active_on": None}
    assert by_name[mine.name]["safe_to_manage"] is False
    assert by_name[mine.name]["reason_not_safe"] == "already managed"
    assert by_name[mine.name]["cinder_id"] == mine.id
    assert not any(n.startswith("aos-") for n in by_name)
    names = [e["reference"]["source-name"] for e in entries]
    assert names == sorted(names)
    # Paging: limit and offset as Cinder passes them.
    page = drv.get_manageable_volumes([mine], None, 1, 1, ["reference"], ["asc"])
    assert [e["reference"]["source-name"] for e in page] == names[1:2]
    ctl("deactivate_volume", vg=VG, name=busy, host=cluster.host_a)
    for n in (legacy, busy):
        drv.delete_volume({"name": n, "id": n})
    drv.delete_volume(mine)


def test_consistent_group_types_are_refused(volumes, manager):
    from cinder.volume import group_types

    cg = group_types.create(volumes.ctx, f"cg-{uuid.uuid4().hex[:6]}",
                            {"consistent_group_snapshot_enabled": "<is> True"})
    with pytest.raises(sl_exc.SharedLVMError, match="consistent group snapshots"):
        manager.driver.create_group(volumes.ctx, {"id": "g1", "group_type_id": cg["id"]})
    generic = group_types.create(volumes.ctx, f"generic-{uuid.uuid4().hex[:6]}", {})
    with pytest.raises(NotImplementedError):  # the manager's generic path takes over
        manager.driver.create_group(volumes.ctx, {"id": "g2", "group_type_id": generic["id"]})
    # Such a group exists only in error; it can still be deleted (Cinder would ask for the
    # driver's delete_consistencygroup otherwise). Generic groups: the generic path.
    assert manager.driver.delete_group(volumes.ctx, {"id": "g1", "group_type_id": cg["id"]}, []) == (
        {"status": "deleted"}, [])
    with pytest.raises(NotImplementedError):
        manager.driver.delete_group(volumes.ctx, {"id": "g2", "group_type_id": generic["id"]}, [])


def test_manage_an_lv_as_a_snapshot(volumes, manager, ctl):
    from cinder import objects

    drv = manager.driver
    vol = volumes.new(size=1)
    name = _legacy_lv(ctl, GiB)
    snap = objects.Snapshot(
        volumes.ctx, volume_id=vol.id, volume_size=0, status="creating",
        project_id=volumes.ctx.project_id, user_id=volumes.ctx.user_id, display_name="managed")
    snap.create()
    assert drv.manage_existing_snapshot_get_size(snap, name) == 1  # Cinder passes the bare name
    drv.manage_existing_snapshot(snap, {"source-name": name})
    lv = drv.snapshot_lv_name(snap)
    assert ctl("get_volume", vg=VG, name=lv)["size_bytes"] == GiB
    with pytest.raises(sl_exc.LVNotFound):
        ctl("get_volume", vg=VG, name=name)
    # An ordinary snapshot now: a volume from it.
    snap.volume_size = 1
    restored = volumes.new(size=1, create=False)
    drv.create_volume_from_snapshot(restored, snap)
    assert ctl("get_volume", vg=VG, name=restored.name)["size_bytes"] == GiB
    # Its LV is a known snapshot's: neither a volume nor another snapshot may take it.
    with pytest.raises(exception.ManageExistingInvalidReference, match="snapshot"):
        drv.manage_existing_get_size(restored, {"source-name": lv})
    with pytest.raises(exception.ManageExistingAlreadyManaged):
        drv.manage_existing_snapshot_get_size(snap, {"source-name": lv})
    # Unmanage: the LV stays.
    drv.unmanage_snapshot(snap)
    assert ctl("get_volume", vg=VG, name=lv)["size_bytes"] == GiB
    drv.delete_snapshot(snap)
    for v in (vol, restored):
        drv.delete_volume(v)
