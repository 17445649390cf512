"""Cinder's manage / unmanage of LVs made outside Cinder, through the real API (`cinder
manageable-list`, `cinder manage`, `cinder unmanage` are these cinderclient calls). The
stack's agents allow one legacy glob besides Cinder's names (conftest.LEGACY_GLOB)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from test_stack_flows import attach, cleanup, poll, wait_gone, wait_status

from cinder_sharedlvm_driver import exception as sl_exc
from conftest import BACKEND, LEGACY_GLOB, VG, Stack

GiB = 1 << 30


def _legacy_lv(stack: Stack, size_bytes: int) -> str:
    """An LV made outside Cinder, with a legacy name (the system being replaced made these)."""
    name = LEGACY_GLOB.replace("*", uuid.uuid4().hex[:8])
    stack.ctl.call("create_volume", what="test: an LV made outside Cinder", vg=VG, name=name,
                   size_bytes=size_bytes)
    return name


def _pool(stack: Stack) -> str:
    return f"{stack.cluster.host_a}@{BACKEND}#{BACKEND}"


def _db_status(stack: Stack, volume_id: str) -> str:
    conn = stack.db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT status FROM cinder.volumes WHERE id = %s", (volume_id,))
            (status,) = cur.fetchone()
            return str(status)
    finally:
        conn.close()


def _manageable(admin: Any, stack: Stack, name: str) -> Any:
    (entry,) = [m for m in admin.volumes.list_manageable(_pool(stack))
                if m.reference["source-name"] == name]
    return entry


def test_manage_attach_unmanage_and_manage_again(stack: Stack, admin: Any, nova: Any,
                                                 types: dict[str, Any]) -> None:
    a = stack.cluster.host_a
    name = _legacy_lv(stack, 3 * GiB // 2)
    entry = _manageable(admin, stack, name)
    assert entry.safe_to_manage is True and entry.size == 2 and entry.cinder_id is None

    vol = admin.volumes.manage(_pool(stack), {"source-name": name}, name="managed",
                               volume_type=BACKEND)
    vol = wait_status(admin, vol.id, "available")
    assert vol.size == 2
    assert stack.lv_gib(vol.id) == 2, "grown to Cinder's whole GiB"
    with pytest.raises(sl_exc.LVNotFound):
        stack.ctl.get_volume(name, what="test: the old name is gone")
    entry = _manageable(admin, stack, f"volume-{vol.id}")
    assert entry.safe_to_manage is False and entry.reason_not_safe == "already managed"
    assert entry.cinder_id == vol.id

    # An ordinary volume now: nova's attach and detach.
    att = attach(nova, vol.id, a)
    wait_status(admin, vol.id, "in-use")
    assert stack.active_on(vol.id) == {a: "exclusive"}
    nova.attachments.delete(att)
    wait_status(admin, vol.id, "available")
    assert stack.active_on(vol.id) == {}

    # Unmanage: Cinder forgets it, the LV stays under its name; manage it again as a new volume.
    admin.volumes.unmanage(vol.id)
    wait_gone(admin, vol.id)
    assert stack.lv_gib(vol.id) == 2
    assert _manageable(admin, stack, f"volume-{vol.id}").safe_to_manage is True
    again = admin.volumes.manage(_pool(stack), {"source-name": f"volume-{vol.id}"},
                                 volume_type=BACKEND)
    again = wait_status(admin, again.id, "available")
    assert again.size == 2 and stack.lv_gib(again.id) == 2
    cleanup(admin, nova, again.id)


def test_manage_of_an_lv_active_on_a_host_is_refused(stack: Stack, admin: Any,
                                                     types: dict[str, Any]) -> None:
    b = stack.cluster.host_b
    name = _legacy_lv(stack, GiB)
    stack.ctl.activate(name, b, "exclusive", what="test: a host uses the legacy LV")
    entry = _manageable(admin, stack, name)
    assert entry.safe_to_manage is False and entry.reason_not_safe == f"active on {b}"

    vol = admin.volumes.manage(_pool(stack), {"source-name": name}, volume_type=BACKEND)
    # The API shows `error` (cinder maps error_managing to it for compatibility); the
    # database has the manage flow's own state.
    vol = wait_status(admin, vol.id, "error")
    assert _db_status(stack, vol.id) == "error_managing"
    # The driver's exception, in cinder-volume's log: what and where, and what to do.
    expected = f"the LV is active on {b} (exclusive)"
    log = poll(lambda: (lambda t: t if expected in t else None)(
        (stack.workdir / "cinder-volume.log").read_text(errors="replace")),
        timeout=30, what="the driver's refusal in cinder-volume.log")
    line = next(ln for ln in log.splitlines() if expected in ln)
    assert f"manage {VG}/{name}" in line and "aosctl volume deactivate" in line, line
    # Nothing changed in the VG.
    state = stack.ctl.get_volume(name, what="test: the LV is untouched")
    assert state["active_on"] == [{"host": b, "mode": "exclusive"}]

    admin.volumes.delete(vol.id)
    wait_gone(admin, vol.id)
    stack.ctl.deactivate(name, b, what="test: release it")
    stack.ctl.delete_volume(name, what="test: clean up")


def test_snapshot_manage_and_unmanage(stack: Stack, admin: Any, nova: Any,
                                      types: dict[str, Any]) -> None:
    vol = admin.volumes.create(1, volume_type=BACKEND, name="snap-origin")
    vol = wait_status(admin, vol.id, "available")
    name = _legacy_lv(stack, GiB)
    snap = admin.volume_snapshots.manage(vol.id, {"source-name": name}, name="managed-snap")

    def snap_status(want: str) -> Any:
        def check() -> Any:
            s = admin.volume_snapshots.get(snap.id)
            if s.status.startswith("error"):
                raise AssertionError(f"snapshot {snap.id} went to {s.status}")
            return s if s.status == want else None
        return poll(check, timeout=60, what=f"snapshot {snap.id} {want}")

    got = snap_status("available")
    assert got.size == 1
    lv = stack.ctl.get_volume(f"_snapshot-{snap.id}", what="test: the snapshot's LV")
    assert int(lv["size_bytes"]) == GiB and lv["active_on"] == []
    # A volume from the managed snapshot.
    restored = admin.volumes.create(1, volume_type=BACKEND, snapshot_id=snap.id)
    restored = wait_status(admin, restored.id, "available")
    assert stack.lv_gib(restored.id) == 1
    cleanup(admin, nova, restored.id)
    # Unmanage: Cinder forgets it, the LV stays.
    admin.volume_snapshots.unmanage(snap.id)
    poll(lambda: all(s.id != snap.id for s in admin.volume_snapshots.list()), timeout=60,
         what="snapshot unmanaged")
    assert int(stack.ctl.get_volume(f"_snapshot-{snap.id}", what="test: still there")["size_bytes"]) == GiB
    stack.ctl.delete_volume(f"_snapshot-{snap.id}", what="test: clean up")
    cleanup(admin, nova, vol.id)
