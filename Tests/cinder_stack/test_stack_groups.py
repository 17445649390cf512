"""Generic volume groups and group snapshots through the real API (cinder 29: `cinder
group-type-create`, `group-create`, `group-snapshot-create`, `group-create-from-src`). The
driver implements no group method: Cinder's manager runs its generic path, volume by volume,
on the driver's snapshots (full copies by agent jobs) and clones. A group type that asks for
consistent group snapshots is refused, and so is the seed's `consisgroup-create`, which cinder
29 maps to a group of its `default_cgsnapshot_type` (docs/cinder.md, "Groups")."""

from __future__ import annotations

import uuid
from typing import Any

from test_stack_flows import poll, wait_gone

from conftest import BACKEND, Stack

GiB = 1 << 30


def _wait_group(admin: Any, group_id: str, want: str, timeout: float = 120) -> Any:
    def check() -> Any:
        g = admin.groups.get(group_id)
        if g.status.startswith("error") and not want.startswith("error"):
            raise AssertionError(f"group {group_id} went to {g.status} waiting for {want}")
        return g if g.status == want else None
    return poll(check, timeout=timeout, what=f"group {group_id} {want}")


def _wait_group_snapshot(admin: Any, gs_id: str, want: str = "available") -> Any:
    def check() -> Any:
        gs = admin.group_snapshots.get(gs_id)
        if gs.status.startswith("error"):
            raise AssertionError(f"group snapshot {gs_id} went to {gs.status}")
        return gs if gs.status == want else None
    return poll(check, timeout=120, what=f"group snapshot {gs_id} {want}")


def _members(admin: Any, group_id: str) -> list[Any]:
    return admin.volumes.list(search_opts={"group_id": group_id})


def _wait_volumes(admin: Any, group_id: str, n: int) -> list[Any]:
    def check() -> Any:
        vols = _members(admin, group_id)
        bad = [v for v in vols if v.status.startswith("error")]
        if bad:
            raise AssertionError(f"volumes of group {group_id} in {[v.status for v in bad]}")
        return vols if len(vols) == n and all(v.status == "available" for v in vols) else None
    return poll(check, timeout=120, what=f"{n} available volumes in group {group_id}")


def test_generic_group_snapshot_and_groups_from_sources(stack: Stack, admin: Any,
                                                        types: dict[str, Any]) -> None:
    gtype = admin.group_types.create(f"generic-{uuid.uuid4().hex[:6]}")
    group = admin.groups.create(gtype.id, BACKEND, name="g1")
    _wait_group(admin, group.id, "available")
    sizes = (1, 2)
    for size in sizes:
        admin.volumes.create(size, volume_type=BACKEND, group_id=group.id, name=f"g1-{size}")
    members = _wait_volumes(admin, group.id, 2)
    assert sorted(v.size for v in members) == list(sizes)

    gsnap = admin.group_snapshots.create(group.id, name="gs1")
    _wait_group_snapshot(admin, gsnap.id)
    snaps = admin.volume_snapshots.list(search_opts={"group_snapshot_id": gsnap.id})
    assert sorted(s.size for s in snaps) == list(sizes)
    for s in snaps:  # full copies: an LV each, of the volume's size
        lv = stack.ctl.get_volume(f"_snapshot-{s.id}", what="test: the snapshot's LV")
        assert int(lv["size_bytes"]) == s.size * GiB and lv["active_on"] == []

    from_snap = admin.groups.create_from_src(gsnap.id, None, name="g-from-snapshot")
    from_src = admin.groups.create_from_src(None, group.id, name="g-from-group")
    made = []
    for g in (from_snap, from_src):
        _wait_group(admin, g["id"], "available")
        vols = _wait_volumes(admin, g["id"], 2)
        assert sorted(v.size for v in vols) == list(sizes)
        for v in vols:
            assert stack.lv_gib(v.id) == v.size and stack.active_on(v.id) == {}
        made.append(g["id"])

    # Delete everything: the groups made from sources, the snapshot, the first group.
    for gid in made:
        vols = _members(admin, gid)
        admin.groups.delete(gid, delete_volumes=True)
        for v in vols:
            wait_gone(admin, v.id)
    admin.group_snapshots.delete(gsnap.id)
    poll(lambda: all(g.id != gsnap.id for g in admin.group_snapshots.list()), timeout=60,
         what="group snapshot deleted")
    for s in snaps:
        poll(lambda s=s: not _lv_exists(stack, f"_snapshot-{s.id}"), timeout=60,
             what=f"snapshot LV of {s.id} deleted")
    admin.groups.delete(group.id, delete_volumes=True)
    for v in members:
        wait_gone(admin, v.id)
    admin.group_types.delete(gtype.id)


def _lv_exists(stack: Stack, name: str) -> bool:
    from cinder_sharedlvm_driver import exception as sl_exc
    try:
        stack.ctl.get_volume(name, what="test: look for the LV")
    except sl_exc.LVNotFound:
        return False
    return True


def test_consistent_group_snapshots_are_refused(stack: Stack, admin: Any,
                                                types: dict[str, Any]) -> None:
    gtype = admin.group_types.create(f"consistent-{uuid.uuid4().hex[:6]}")
    gtype.set_keys({"consistent_group_snapshot_enabled": "<is> True"})
    group = admin.groups.create(gtype.id, BACKEND, name="cg")
    got = _wait_group(admin, group.id, "error")
    print(f"group of a consistent group type: {got.status}")
    admin.groups.delete(group.id, delete_volumes=True)
    poll(lambda: not any(g.id == group.id for g in admin.groups.list()), timeout=60,
         what="group deleted")
    admin.group_types.delete(gtype.id)

    # The seed's `cinder consisgroup-create --name sanlock sanlock`: the deprecated CG API.
    # Its group type is reserved: only the CG API may read or change such a group.
    cg = admin.consistencygroups.create(BACKEND, name="sanlock")
    got = poll(lambda: (lambda c: c if c.status != "creating" else None)(
        admin.consistencygroups.get(cg.id)), timeout=60, what="consistency group created")
    print(f"consisgroup-create: consistency group {got.id}: {got.status}")
    assert got.status == "error"
    admin.consistencygroups.delete(cg.id, force=True)
    poll(lambda: all(c.id != cg.id for c in admin.consistencygroups.list()), timeout=60,
         what="consistency group deleted")
