"""Evacuate through the real broker (issue 14): the controller releases the activation of a host
whose agent is down through a live agent (LV tag `aos-released.<host>` in the shared VG); the
other host's activation meets the dead host's lock with a clear message; the returning agent
gives the LV up instead of restoring it. Two simulated agents, one state file (the VG)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import oslo_messaging
import pytest

import test_controller_e2e as e2e
from test_controller_e2e import VG, agent_statuses, remote_error, wait_alive, wait_for

# The end-to-end suite's fixtures: a controller and two simulated agents on one VG.
cluster = e2e.cluster
ctl = e2e.ctl


def lv_state(tmp: Path, name: str) -> dict[str, Any]:
    doc = json.loads((tmp / "cluster.json").read_text())
    return dict(doc["vgs"][VG]["lvs"][name])


def test_release_on_a_down_host_and_its_return(cluster, ctl, tmp_path):
    a, b = cluster.host_a, cluster.host_b
    name = "volume-evac"
    wait_alive(ctl, a, b)
    ctl("create_volume", vg=VG, name=name, size_gb=1)
    ctl("activate_volume", vg=VG, name=name, host=b)
    cluster.agents[b].signal(signal.SIGKILL)  # B's agent dies; its host (its LV and lock) stays
    cluster.agents[b].proc.wait(timeout=10)
    wait_for(lambda: agent_statuses(ctl).get(b) == "down", timeout=30, what=f"{b} down")

    t0 = time.monotonic()
    r = ctl("deactivate_volume", vg=VG, name=name, host=b)
    print(f"release on a down host: {time.monotonic() - t0:.3f}s")
    assert r["released"] is True and r["released_by"] == a and r["changed"] is True and r["active_on"] == [], r
    # Asked again through the CLI: an operator reads that nothing ran on B (it is down).
    out = cluster.aosctl("volume", "deactivate", name, "--host", b, "--vg", VG)
    assert out.returncode == 0, out.stderr
    assert f"Released volume {VG}/{name} from {b} (its agent is down; recorded by {a})" in out.stdout, out.stdout
    lv = lv_state(tmp_path, name)
    assert lv.get("tags") == [f"aos-released.{b}"] and lv.get("exclusiveHolder") == b, lv

    # B's lock stands (its sanlock lease would still live): A is refused, and told why.
    e = remote_error(lambda: ctl("activate_volume", vg=VG, name=name, host=a))
    assert e.exc_type == "LockedByOtherHost", e
    assert b in e.value and "lease expires" in e.value and "start that agent" in e.value, e.value

    # B's agent returns (no reboot): the LV is active there but unused, so it gives it up.
    cluster.start_agent(b, 2)
    wait_alive(ctl, b)
    lv = lv_state(tmp_path, name)
    assert "exclusiveHolder" not in lv and b not in lv.get("devices", {}), lv
    assert not lv.get("tags"), lv
    assert "not restored" in cluster.agents[b].stderr_text()
    health = next(x for x in ctl("list_agents")["agents"] if x["host"] == b)
    assert health["restore_failures"] == [] and health.get("active_lvs", []) == [], health
    r = ctl("activate_volume", vg=VG, name=name, host=a)
    assert r["active_on"] == [{"host": a, "mode": "exclusive"}], r
    ctl("deactivate_volume", vg=VG, name=name, host=a)
    ctl("delete_volume", vg=VG, name=name)


def test_release_lv_is_the_controllers_alone(cluster, ctl, oslo_transport):
    """Sent straight to an agent by this test's (unauthenticated, enforce=false) client, the
    arguments are still checked: an agent never releases its own activation."""
    a, b = cluster.host_a, cluster.host_b
    wait_alive(ctl, a, b)
    client = oslo_messaging.get_rpc_client(
        oslo_transport, oslo_messaging.Target(topic="aos-agent", server=a, version="1.0"), timeout=30)
    for host in (a, "", "x y"):
        with pytest.raises(oslo_messaging.RemoteError) as info:
            client.call({}, "release_lv", vg=VG, name="volume-x", host=host)
        assert info.value.exc_type == "InvalidArgument", info.value
