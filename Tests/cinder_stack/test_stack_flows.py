"""The driver behind real cinder-api, cinder-scheduler and cinder-volume (issue 14), driven by
python-cinderclient the way nova and an operator do (conftest.py starts the stack).

The LV's activation is checked at the source of truth: aos-controller's get_volume."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conftest import BACKEND, MULTIATTACH, TIMINGS, Stack, get_pools


def _snapshots_supported() -> bool:
    """The capability of the driver cinder-volume runs: the work tree's (conftest.py puts
    deploy/cinder first on the path, for cinder's services too)."""
    from cinder import objects
    objects.register_all()  # cinder's driver modules need the object classes at import
    from cinder_sharedlvm_driver import driver
    return bool(getattr(driver, "SNAPSHOTS_SUPPORTED", False))


@pytest.fixture(autouse=True)
def _timed(request: pytest.FixtureRequest) -> Iterator[None]:
    t0 = time.monotonic()
    yield
    TIMINGS.add(f"flow {request.node.name}", time.monotonic() - t0)


def wait_status(client: Any, volume_id: str, want: str, timeout: float = 60) -> Any:
    """The volume once its status is `want`; fails at once on an error status."""
    def check() -> Any:
        vol = client.volumes.get(volume_id)
        if vol.status.startswith("error") and not want.startswith("error"):
            raise AssertionError(f"volume {volume_id} went to {vol.status} waiting for {want}")
        return vol if vol.status == want else None
    return poll(check, timeout=timeout, what=f"volume {volume_id} {want}")


def poll(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """check()'s first truthy result; its exceptions end the wait at once (unlike wait_for)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)  # polling interval, not synchronisation


def wait_gone(client: Any, volume_id: str, timeout: float = 60) -> None:
    from cinderclient import exceptions

    def gone() -> bool:
        try:
            vol = client.volumes.get(volume_id)
        except exceptions.NotFound:
            return True
        if vol.status.startswith("error"):
            raise AssertionError(f"volume {volume_id} went to {vol.status} while deleting")
        return False
    poll(gone, timeout=timeout, what=f"volume {volume_id} deleted")


def create(client: Any, size: int = 1, vtype: str = BACKEND, **kwargs: Any) -> Any:
    vol = client.volumes.create(size, volume_type=vtype, name=f"t-{uuid.uuid4().hex[:6]}", **kwargs)
    return wait_status(client, vol.id, "available")


def connector(host: str) -> dict[str, Any]:
    """os-brick's connector properties as nova sends them for a compute host."""
    return {"host": host, "initiator": f"iqn.1993-08.org.debian:01:{host}", "ip": "127.0.0.1",
            "platform": "x86_64", "os_type": "linux", "multipath": False}


def attach(nova: Any, volume_id: str, host: str, instance: str | None = None) -> str:
    """nova's attach: reserve (no connector), update with the host's connector, complete.
    Returns the attachment's id. (cinderclient's create returns a dict, update an object.)"""
    att = nova.attachments.create(volume_id, None, instance_id=instance or str(uuid.uuid4()))
    assert att["status"] == "reserved"
    updated = nova.attachments.update(att["id"], connector(host))
    assert updated.connection_info["driver_volume_type"] == "local"
    nova.attachments.complete(att["id"])
    return str(att["id"])


def cleanup(admin: Any, nova: Any, volume_id: str) -> None:
    for att in nova.attachments.list(search_opts={"volume_id": volume_id}):
        nova.attachments.delete(att.id)
    wait_status(admin, volume_id, "available")
    admin.volumes.delete(volume_id)
    wait_gone(admin, volume_id)


# ---- 1. types ---------------------------------------------------------------------------------


def test_volume_types_and_pool(stack: Stack, admin: Any, types: dict[str, Any]) -> None:
    print(f"microversion {stack.version}")
    got = {t.name: t.get_keys() for t in admin.volume_types.list()}
    assert got[MULTIATTACH] == {"volume_backend_name": BACKEND, "multiattach": "<is> True"}
    assert got[BACKEND] == {"volume_backend_name": BACKEND}
    pools = get_pools(admin)
    assert list(pools) == [f"{stack.cluster.host_a}@{BACKEND}#{BACKEND}"]
    (caps,) = pools.values()
    assert caps["multiattach"] is True and caps["thick_provisioning_support"] is True
    assert caps["backend_state"] == "up"


# ---- 2. create, extend, delete ----------------------------------------------------------------


def test_create_extend_delete(stack: Stack, admin: Any, types: dict[str, Any]) -> None:
    vol = create(admin, size=1)
    assert stack.lv_gib(vol.id) == 1
    assert stack.active_on(vol.id) == {}
    admin.volumes.extend(vol.id, 2)
    vol = wait_status(admin, vol.id, "available")
    assert vol.size == 2
    assert stack.lv_gib(vol.id) == 2
    admin.volumes.delete(vol.id)
    wait_gone(admin, vol.id)


# ---- 3. clone -------------------------------------------------------------------------------


def test_clone_is_an_agent_copy_of_the_size_asked(stack: Stack, admin: Any, types: dict[str, Any]) -> None:
    src = create(admin, size=1)
    clone = create(admin, size=2, source_volid=src.id)
    assert clone.size == 2
    assert stack.lv_gib(clone.id) == 2
    assert stack.active_on(clone.id) == {} and stack.active_on(src.id) == {}
    for vol in (clone, src):
        admin.volumes.delete(vol.id)
    for vol in (clone, src):
        wait_gone(admin, vol.id)


# ---- 4. attach / detach the nova way --------------------------------------------------------


def test_attach_exclusive_then_detach(stack: Stack, admin: Any, nova: Any, types: dict[str, Any]) -> None:
    a = stack.cluster.host_a
    vol = create(admin)
    att = attach(nova, vol.id, a)
    vol = wait_status(admin, vol.id, "in-use")
    assert vol.attachments[0]["host_name"] == a
    assert stack.active_on(vol.id) == {a: "exclusive"}
    nova.attachments.delete(att)
    wait_status(admin, vol.id, "available")
    assert stack.active_on(vol.id) == {}
    cleanup(admin, nova, vol.id)


def test_detach_without_service_role_is_refused_by_cinder(stack: Stack, admin: Any, nova: Any,
                                                          types: dict[str, Any]) -> None:
    """What an operator's (non-service) delete of a connected attachment gets from cinder 29:
    its check for bug #2004555 asks nova, which does not exist here -> an error; the volume
    stays attached and active."""
    from cinderclient import exceptions

    a = stack.cluster.host_a
    vol = create(admin)
    att = attach(nova, vol.id, a)
    with pytest.raises(exceptions.ClientException):
        admin.attachments.delete(att)
    assert stack.active_on(vol.id) == {a: "exclusive"}
    cleanup(admin, nova, vol.id)


# ---- 5. multiattach ---------------------------------------------------------------------------


def test_multiattach_on_two_hosts(stack: Stack, admin: Any, nova: Any, types: dict[str, Any]) -> None:
    a, b = stack.cluster.host_a, stack.cluster.host_b
    vol = create(admin, vtype=MULTIATTACH)
    assert vol.multiattach is True
    att_a = attach(nova, vol.id, a)
    assert stack.active_on(vol.id) == {a: "exclusive"}
    att_b = attach(nova, vol.id, b)
    assert stack.active_on(vol.id) == {a: "shared", b: "shared"}
    nova.attachments.delete(att_a)
    # The last host left takes the LV back exclusively (the driver's terminate_connection).
    assert stack.active_on(vol.id) == {b: "exclusive"}
    nova.attachments.delete(att_b)
    wait_status(admin, vol.id, "available")
    assert stack.active_on(vol.id) == {}
    cleanup(admin, nova, vol.id)


def test_second_host_on_a_plain_volume_is_refused(stack: Stack, admin: Any, nova: Any,
                                                  types: dict[str, Any]) -> None:
    """A second instance on a non-multiattach volume: cinder-api refuses the reservation."""
    from cinderclient import exceptions

    a = stack.cluster.host_a
    vol = create(admin)
    attach(nova, vol.id, a)
    with pytest.raises(exceptions.ClientException):
        nova.attachments.create(vol.id, None, instance_id=str(uuid.uuid4()))
    assert stack.active_on(vol.id) == {a: "exclusive"}
    cleanup(admin, nova, vol.id)


# ---- 6. live migration ----------------------------------------------------------------------


@pytest.mark.parametrize("vtype", [BACKEND, MULTIATTACH])
def test_live_migration(stack: Stack, admin: Any, nova: Any, types: dict[str, Any], vtype: str) -> None:
    """nova's live migration: a second attachment of the same instance with the destination's
    connector while the source's exists, then the source's is deleted."""
    a, b = stack.cluster.host_a, stack.cluster.host_b
    instance = str(uuid.uuid4())
    vol = create(admin, vtype=vtype)
    src = attach(nova, vol.id, a, instance)
    assert stack.active_on(vol.id) == {a: "exclusive"}
    dst = nova.attachments.create(vol.id, connector(b), instance_id=instance)
    assert dst["connection_info"]["driver_volume_type"] == "local"
    assert stack.active_on(vol.id) == {a: "shared", b: "shared"}
    nova.attachments.complete(dst["id"])
    nova.attachments.delete(src)
    vol = wait_status(admin, vol.id, "in-use")
    assert [x["host_name"] for x in vol.attachments] == [b]
    assert stack.active_on(vol.id) == {b: "exclusive"}
    cleanup(admin, nova, vol.id)


# ---- 7. in-use extend -----------------------------------------------------------------------


def test_in_use_extend_is_refused(stack: Stack, admin: Any, nova: Any, types: dict[str, Any]) -> None:
    """The driver reports `online_extend_support: False`: nova attaches these volumes as `local`
    block devices, and nova's libvirt driver for those cannot resize a guest disk (its
    `extend_volume` is the base class's, which raises NotImplementedError). Cinder's API accepts
    the in-use extend (202, status `extending`), its scheduler refuses it, and the volume goes
    back to `in-use` at its old size; the LV is not touched. A detached extend still works."""
    a = stack.cluster.host_a
    vol = create(admin)
    attach(nova, vol.id, a)
    admin.volumes.extend(vol.id, 2)

    def settled() -> Any:
        v = admin.volumes.get(vol.id)
        return v if v.status != "extending" else None
    got = poll(settled, timeout=30, what="in-use extend settled")
    print(f"in-use extend: status {got.status}, size {got.size}, LV {stack.lv_gib(vol.id)} GiB")
    assert (got.status, got.size, stack.lv_gib(vol.id)) == ("in-use", 1, 1)
    assert stack.active_on(vol.id) == {a: "exclusive"}
    cleanup(admin, nova, vol.id)


# ---- snapshots (once the driver has them) ---------------------------------------------------


@pytest.mark.skipif(not _snapshots_supported(),
                    reason="the driver has no snapshots yet (SNAPSHOTS_SUPPORTED unset)")
def test_snapshot_lifecycle(stack: Stack, admin: Any, types: dict[str, Any]) -> None:
    vol = create(admin, size=1)
    snap = admin.volume_snapshots.create(vol.id, name="s")
    def snap_available() -> bool:
        status = admin.volume_snapshots.get(snap.id).status
        assert status != "error", "snapshot creation failed (see cinder-volume.log)"
        return status == "available"
    poll(snap_available, timeout=60, what="snapshot available")
    big = create(admin, size=2, snapshot_id=snap.id)
    assert big.size == 2 and stack.lv_gib(big.id) == 2
    admin.volume_snapshots.delete(snap.id)
    from cinderclient import exceptions

    def snap_gone() -> bool:
        try:
            status = admin.volume_snapshots.get(snap.id).status
        except exceptions.NotFound:
            return True
        assert status != "error_deleting"
        return False
    poll(snap_gone, timeout=60, what="snapshot deleted")
    for v in (big, vol):
        admin.volumes.delete(v.id)
    for v in (big, vol):
        wait_gone(admin, v.id)


def _wait_snapshot(admin: Any, snap_id: str, want: tuple[str, ...]) -> str:
    def check() -> str | None:
        status = str(admin.volume_snapshots.get(snap_id).status)
        return status if status in want else None
    return str(poll(check, timeout=60, what=f"snapshot {snap_id} in {want}"))


def _delete_snapshot(admin: Any, snap_id: str) -> None:
    from cinderclient import exceptions

    admin.volume_snapshots.delete(snap_id)

    def gone() -> bool:
        try:
            status = admin.volume_snapshots.get(snap_id).status
        except exceptions.NotFound:
            return True
        assert status != "error_deleting"
        return False
    poll(gone, timeout=60, what=f"snapshot {snap_id} deleted")


@pytest.mark.skipif(not _snapshots_supported(),
                    reason="the driver has no snapshots yet (SNAPSHOTS_SUPPORTED unset)")
def test_snapshot_of_attached_volume_as_nova_asks(stack: Stack, admin: Any, nova: Any,
                                                  types: dict[str, Any]) -> None:
    """nova's snapshot of a volume-backed server: a snapshot with force=True of an in-use
    volume. The copy runs on the holder from a short-lived COW snapshot (more, and the
    multi-attached case, in test_stack_snapshots_inuse.py); the volume stays attached and
    active on its host."""
    a = stack.cluster.host_a
    vol = create(admin)
    attach(nova, vol.id, a)
    snap = nova.volume_snapshots.create(vol.id, force=True, name="nova-snap")
    assert _wait_snapshot(admin, snap.id, ("available", "error")) == "available"
    assert admin.volumes.get(vol.id).status == "in-use"
    assert stack.active_on(vol.id) == {a: "exclusive"}
    _delete_snapshot(admin, snap.id)
    cleanup(admin, nova, vol.id)


@pytest.mark.skipif(not _snapshots_supported(),
                    reason="the driver has no snapshots yet (SNAPSHOTS_SUPPORTED unset)")
def test_revert_to_snapshot(stack: Stack, admin: Any, types: dict[str, Any]) -> None:
    """Revert a detached volume to its latest snapshot (microversion 3.40)."""
    vol = create(admin)
    snap = admin.volume_snapshots.create(vol.id, name="r")
    assert _wait_snapshot(admin, snap.id, ("available", "error")) == "available"
    admin.volumes.revert_to_snapshot(vol, snap)
    got = poll(lambda: (v := admin.volumes.get(vol.id)).status in ("available", "error") and v,
               timeout=60, what="revert settled")
    print(f"revert: volume {got.status}, snapshot {admin.volume_snapshots.get(snap.id).status}")
    assert got.status == "available"
    assert stack.active_on(vol.id) == {}
    _delete_snapshot(admin, snap.id)
    admin.volumes.delete(vol.id)
    wait_gone(admin, vol.id)
