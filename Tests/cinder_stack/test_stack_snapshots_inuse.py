"""Snapshots and clones of in-use volumes through the real cinder services (issue 14), the way
nova asks for them (a snapshot with force=True of an attached volume): attached on one host, the
copy runs there from a short-lived COW snapshot and holds the data of its time; multi-attached
(active shared on two hosts), it is refused and the volume stays in use as it was.

The data is the simulated VG's: the agents share it through a state file, and a test writes a
block tag into an LV there as a VM would (under the file's lock)."""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from typing import Any

import pytest
from test_stack_flows import _delete_snapshot, _snapshots_supported, _wait_snapshot, attach, cleanup, create, poll

from conftest import MULTIATTACH, VG, Stack

pytestmark = pytest.mark.skipif(not _snapshots_supported(),
                                reason="the driver has no snapshots yet (SNAPSHOTS_SUPPORTED unset)")


def _state(stack: Stack) -> Any:
    return stack.cluster.tmp / "cluster.json"


def _lvs(stack: Stack) -> dict[str, Any]:
    return json.loads(_state(stack).read_text())["vgs"][VG]["lvs"]


def _data(stack: Stack, lv: str) -> dict[int, int]:
    flat = _lvs(stack)[lv].get("data") or []  # a Swift [UInt64: UInt32]: key, value, ...
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _vm_writes(stack: Stack, lv: str, tag: int, mib: int) -> None:
    path = _state(stack)
    with open(f"{path}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        doc = json.loads(path.read_text())
        entry = doc["vgs"][VG]["lvs"][lv]
        flat = entry.get("data") or []
        data = dict(zip(flat[::2], flat[1::2], strict=True))
        data.update({block: tag for block in range(mib)})
        entry["data"] = [x for kv in sorted(data.items()) for x in kv]
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:6]}.tmp")
        tmp.write_text(json.dumps(doc, sort_keys=True))
        os.replace(tmp, path)


def test_snapshot_and_clone_of_a_volume_in_use_on_one_host(stack: Stack, admin: Any, nova: Any,
                                                           types: dict[str, Any]) -> None:
    b = stack.cluster.host_b  # not the cinder-volume host: the copy must run on the VM's host
    vol = create(admin)
    attach(nova, vol.id, b)
    lv = f"volume-{vol.id}"
    _vm_writes(stack, lv, 7, 4)
    snap = nova.volume_snapshots.create(vol.id, force=True, name="nova-snap")
    assert _wait_snapshot(admin, snap.id, ("available", "error")) == "available"
    _vm_writes(stack, lv, 8, 4)  # the VM goes on writing
    assert _data(stack, f"_snapshot-{snap.id}") == {0: 7, 1: 7, 2: 7, 3: 7}, "the data of the snapshot's time"
    assert admin.volumes.get(vol.id).status == "in-use"
    assert stack.active_on(vol.id) == {b: "exclusive"}, "the VM's activation is untouched"
    jobs = stack.ctl.call("list_jobs", what="test: jobs", query=True)["jobs"]
    (job,) = [j for j in jobs if j["target"] == f"_snapshot-{snap.id}"]
    assert job["host"] == b and job["state"] == "succeeded", job
    assert not [n for n in _lvs(stack) if n.startswith("aos-cow-")], "the COW snapshot is gone"

    # A clone of the in-use volume (cinder create --source-volid) runs the same way.
    clone = admin.volumes.create(1, volume_type=vol.volume_type, source_volid=vol.id, name="clone")
    def clone_settled() -> Any:
        got = admin.volumes.get(clone.id)
        return got if got.status in ("available", "error") else None
    assert poll(clone_settled, timeout=60, what="clone settled").status == "available"
    assert _data(stack, f"volume-{clone.id}") == {0: 8, 1: 8, 2: 8, 3: 8}
    assert not [n for n in _lvs(stack) if n.startswith("aos-cow-")]

    _delete_snapshot(admin, snap.id)
    cleanup(admin, nova, clone.id)
    cleanup(admin, nova, vol.id)


def test_snapshot_of_a_multiattached_volume_is_refused(stack: Stack, admin: Any, nova: Any,
                                                       types: dict[str, Any]) -> None:
    a, b = stack.cluster.host_a, stack.cluster.host_b
    vol = create(admin, vtype=MULTIATTACH)
    attach(nova, vol.id, a)
    attach(nova, vol.id, b)
    assert stack.active_on(vol.id) == {a: "shared", b: "shared"}
    snap = nova.volume_snapshots.create(vol.id, force=True, name="multi")
    assert _wait_snapshot(admin, snap.id, ("available", "error")) == "error"
    assert admin.volumes.get(vol.id).status == "in-use"
    assert stack.active_on(vol.id) == {a: "shared", b: "shared"}, "nothing changed"
    assert f"_snapshot-{snap.id}" not in _lvs(stack)
    log = (stack.workdir / "cinder-volume.log").read_text(errors="replace")
    assert "active shared on" in log and "COW snapshot" in log, "the reason is in cinder-volume's log"
    _delete_snapshot(admin, snap.id)
    cleanup(admin, nova, vol.id)
