"""End to end through the controller on the host, against the two real-LVM guests (issue 5).

The controller runs on the host (the debug build the test command made) on its own topic; the
lab agents announce to that topic (fixtures `controller` and `api` in conftest.py). Everything
goes through a Python oslo.messaging client, as the Cinder driver would call it.
"""

from __future__ import annotations

import subprocess
import uuid

import oslo_messaging
import pytest

from conftest import REPO, wait_for_agents
from labvm import LAB_CONTROLLER_TOPIC, VG, Guest

pytestmark = pytest.mark.timeout(900)


def remote(fn, *args, **kwargs) -> oslo_messaging.RemoteError:
    with pytest.raises(oslo_messaging.RemoteError) as info:
        fn(*args, **kwargs)
    return info.value


def device_size(g: Guest, name: str) -> int:
    r = g.sh(f"blockdev --getsize64 /dev/{VG}/{name}", check=True)
    return int(r.stdout.strip())


def test_controller_end_to_end_on_real_lvm(api, hosts, g1: Guest, g2: Guest) -> None:
    h1, h2 = hosts
    wait_for_agents(api, hosts)
    name = f"volume-{uuid.uuid4().hex[:8]}"
    r = api.call({}, "create_volume", name=name, size_bytes=64 << 20)
    assert r["changed"] is True

    api.call({}, "activate_volume", name=name, host=h1, mode="exclusive")
    for mode in ("exclusive", "shared"):
        err = remote(api.call, {}, "activate_volume", name=name, host=h2, mode=mode)
        assert err.exc_type == "LockedByOtherHost", err
        assert h1 in err.value, err.value  # names the holder

    api.call({}, "deactivate_volume", name=name, host=h1)
    api.call({}, "activate_volume", name=name, host=h2, mode="exclusive")
    # Extend while active exclusively: runs on the holder, which sees the new size at once.
    r = api.call({}, "extend_volume", name=name, size_bytes=96 << 20)
    assert r["size_bytes"] == 96 << 20, r
    assert device_size(g2, name) == 96 << 20
    api.call({}, "deactivate_volume", name=name, host=h2)

    api.call({}, "activate_volume", name=name, host=h1, mode="shared")
    api.call({}, "activate_volume", name=name, host=h2, mode="shared")
    v = api.call({}, "get_volume", name=name)
    assert {a["host"]: a["mode"] for a in v["active_on"]} == {h1: "shared", h2: "shared"}, v
    # Extend while shared: shared-update extend on one holder, refresh on the other.
    r = api.call({}, "extend_volume", name=name, size_bytes=128 << 20)
    assert device_size(g1, name) == 128 << 20 and device_size(g2, name) == 128 << 20, r

    err = remote(api.call, {}, "delete_volume", name=name)
    assert err.exc_type in ("Busy", "LockedByOtherHost"), err
    api.call({}, "deactivate_volume", name=name, host=h1)
    api.call({}, "deactivate_volume", name=name, host=h2)
    r = api.call({}, "delete_volume", name=name, volume_clear="none")
    assert r["changed"] is True

    stats = api.call({}, "pool_stats")
    vgs = g1.sh(f"vgs --noheadings --units b --nosuffix -o vg_size,vg_free {VG}", check=True).stdout.split()
    pool = stats["pools"][0] if "pools" in stats else stats
    assert (pool["total_bytes"], pool["free_bytes"]) == (int(vgs[0]), int(vgs[1])), (stats, vgs)


def lv_state(g: Guest, name: str) -> str:
    """'active' or '' as LVM on that host sees it (lv_active is local only)."""
    r = g.sh(f"lvs --noheadings -o lv_active {VG}/{name}")
    return r.stdout.strip() if r.exit == 0 else f"missing (exit {r.exit})"


def test_cinder_driver_attach_detach_on_real_lvm(api, amqp_url: str, hosts, g1: Guest, g2: Guest) -> None:
    """The Cinder driver's attach path (issue 6) against real lvmlockd: attach on host 1,
    live-migration-style second attachment on host 2 (both shared), detach from host 1
    (exclusive again on host 2), detach and delete."""
    python = REPO / ".venv" / "cinder" / "bin" / "python"
    if not python.exists():
        pytest.skip(f"{python} missing: scripts/setup.sh creates it (scripts/test.sh always does)")
    h1, h2 = hosts
    wait_for_agents(api, hosts)
    proc = subprocess.Popen(
        [str(python), str(REPO / "Tests" / "lab" / "cinder_round.py"), amqp_url, LAB_CONTROLLER_TOPIC, VG, h1, h2],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdin is not None and proc.stdout is not None

    def expect(step: str) -> dict:
        line = proc.stdout.readline()
        if not line:
            proc.wait(timeout=30)
            raise AssertionError(f"cinder round ended before {step!r}: {proc.stderr.read()[-4000:]}")
        data = __import__("json").loads(line)
        assert data["step"] == step, data
        return data

    def go() -> None:
        proc.stdin.write("go\n")
        proc.stdin.flush()

    try:
        first = expect("attached")
        name = first["lv"]
        assert first["info"] == {"driver_volume_type": "local", "data": {"device_path": f"/dev/{VG}/{name}"}}
        assert (lv_state(g1, name), lv_state(g2, name)) == ("active", "")
        assert g1.sh(f"test -b /dev/{VG}/{name}").exit == 0
        modes = {a["host"]: a["mode"] for a in api.call({}, "get_volume", name=name)["active_on"]}
        assert modes == {h1: "exclusive"}, modes
        go()
        expect("shared")
        assert (lv_state(g1, name), lv_state(g2, name)) == ("active", "active")
        modes = {a["host"]: a["mode"] for a in api.call({}, "get_volume", name=name)["active_on"]}
        assert modes == {h1: "shared", h2: "shared"}, modes
        go()
        expect("handed_back")
        assert (lv_state(g1, name), lv_state(g2, name)) == ("", "active")
        modes = {a["host"]: a["mode"] for a in api.call({}, "get_volume", name=name)["active_on"]}
        assert modes == {h2: "exclusive"}, modes
        go()
        expect("detached")
        assert proc.wait(timeout=60) == 0, proc.stderr.read()[-4000:]
        assert lv_state(g1, name).startswith("missing") and lv_state(g2, name).startswith("missing")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
