"""rename_volume / rename_lv (Cinder's manage_existing) through the real broker: Python
(oslo.messaging) to aos-controller to an aos-agent, and aosctl. Agent A manages Cinder's names
and `lv-*`; agent B (an admin's tool) manages every LV of the same simulated VG."""

from __future__ import annotations

import json

import pytest

from test_controller_e2e import (
    VG,
    Cluster,
    ctl,  # noqa: F401 - a pytest fixture, found by its name
    remote_error,
    wait_alive,
)

pytestmark = pytest.mark.timeout(180)

GiB = 1 << 30


def test_rename_through_controller_and_aosctl(spawn, amqp_url, tmp_path, swift_bin, ctl):  # noqa: F811
    c = Cluster(spawn, amqp_url, tmp_path, swift_bin)
    c.conf.write_text("[agent]\nlv_name_pattern = volume-*, _snapshot-*, lv-*\n")
    c.start_agent(c.host_a, 1)
    c.conf.write_text("[agent]\nlv_name_pattern = *\n")
    c.start_agent(c.host_b, 2)
    c.conf.write_text("")
    c.start_controller()
    a, b = c.host_a, c.host_b
    wait_alive(ctl, a, b)
    ctl("create_volume", vg=VG, name="lv-old", size_gb=1)

    # Active on a host: refused by the controller, naming the holder; nothing renamed.
    ctl("activate_volume", vg=VG, name="lv-old", host=b, mode="shared")
    e = remote_error(lambda: ctl("rename_volume", vg=VG, name="lv-old", new_name="volume-new"))
    assert e.exc_type == "Busy" and f"shared on {b}" in e.value, (e.exc_type, e.value)
    assert ctl("get_volume", vg=VG, name="lv-old")["active_on"] == [{"host": b, "mode": "shared"}]
    # Straight to the agent (admin): LVM's own lock refuses it there too.
    r = c.aosctl("--json", "--direct", a, "volume", "rename", "lv-old", "volume-new", "--vg", VG)
    assert r.returncode == 4, (r.returncode, r.stdout, r.stderr)
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "locked_by_other_host" and "active on another host" in err["message"], err
    ctl("deactivate_volume", vg=VG, name="lv-old", host=b)

    # Inactive everywhere: renamed by one agent; a retry changes nothing.
    r = c.aosctl("--json", "volume", "rename", "lv-old", "volume-new", "--vg", VG)
    assert r.returncode == 0, (r.stdout, r.stderr)
    out = json.loads(r.stdout)
    assert out["changed"] is True and out["size_bytes"] == GiB and out["new_name"] == "volume-new", out
    assert ctl("get_volume", vg=VG, name="volume-new")["size_bytes"] == GiB
    e = remote_error(lambda: ctl("get_volume", vg=VG, name="lv-old"))
    assert e.exc_type == "NotFound"
    r = c.aosctl("volume", "rename", "lv-old", "volume-new", "--vg", VG)
    assert r.returncode == 0 and "nothing to do" in r.stdout, (r.stdout, r.stderr)

    # A name outside agent A's lv_name_pattern: refused by name, with the option to change.
    r = c.aosctl("--json", "--direct", b, "volume", "create", "scratch", "--size", "1G", "--vg", VG)
    assert r.returncode == 0, r.stderr
    r = c.aosctl("--json", "--direct", a, "volume", "rename", "scratch", "volume-s", "--vg", VG)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "lv_not_managed" and "lv_name_pattern" in err["message"], err
    # The jobs' namespace: refused by the controller before any agent.
    e = remote_error(lambda: ctl("rename_volume", vg=VG, name="volume-new", new_name="aos-wipe-x"))
    assert e.exc_type == "InvalidArgument", e
