"""Evacuate (issue 14): nova deletes the attachment of the dead host, then attaches on a live
one. Runs last (file order): it kills host B's agent of the session's cluster and brings host B
back as after a reboot.

The simulated VG keeps a dead host's LV locks as sanlock does until the host's lease expires;
the test expires B's lease itself (`_expire_leases`, what the other hosts' sanlock does ~80 s
after B stopped renewing it) and checks the clear refusal before that."""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from test_stack_flows import attach, cleanup, create, wait_status

from cinder_sharedlvm_driver import exception as sl_exc
from conftest import Stack, wait_for

VG_KEY = "vgs"


def test_evacuate_from_a_dead_host(stack: Stack, admin: Any, nova: Any, types: dict[str, Any]) -> None:
    a, b = stack.cluster.host_a, stack.cluster.host_b
    vol = create(admin)
    name = f"volume-{vol.id}"
    att_b = attach(nova, vol.id, b)
    assert stack.active_on(vol.id) == {b: "exclusive"}
    agent_b = stack.cluster.agents[b]
    agent_b.stop(grace=0)  # SIGTERM, then SIGKILL: host B is gone
    wait_for(lambda: _agent_status(stack, b) == "down", timeout=30, what=f"{b} down")
    t0 = time.monotonic()
    returned = False
    try:
        nova.attachments.delete(att_b)  # what nova's evacuate does on the destination
        wait_status(admin, vol.id, "available")
        assert stack.active_on(vol.id) == {}, "the controller forgot B's activation"
        assert f"aos-released.{b}" in _lv(stack, name).get("tags", []), "the release is recorded in the VG"
        # B's lease still lives: A cannot take the LV, and the error says why and for how long.
        with pytest.raises(sl_exc.VolumeLockedByOtherHost) as info:
            stack.ctl.activate(name, a, "exclusive", what="test: activate on A while B's lease lives")
        text = str(info.value)
        assert b in text and "lease expires" in text, text
        _expire_leases(stack.cluster.tmp / "cluster.json", b)  # ~80 s later on real sanlock
        attach(nova, vol.id, a)
        assert stack.active_on(vol.id) == {a: "exclusive"}
        print(f"evacuate flow {time.monotonic() - t0:.1f}s")
        # Host B returns (rebooted): its agent had recorded the activation, and must not restore it.
        stack.cluster.start_agent(b, 2, "--simulate-reboot")
        returned = True
        wait_for(lambda: _agent_status(stack, b) == "alive", timeout=30, what=f"{b} alive")
        agent = _agent(stack, b)
        assert agent["restore_failures"] == [], agent
        assert stack.active_on(vol.id) == {a: "exclusive"}, "B did not take the volume back"
        lv = _lv(stack, name)
        assert lv.get("exclusiveHolder") == a and b not in lv.get("devices", {}), lv
        assert f"aos-released.{b}" not in lv.get("tags", []), "B's agent removed its release tag"
        log = stack.cluster.agents[b].stderr_text()
        assert "not restored" in log, log[-3000:]
    finally:
        print(f"volume {admin.volumes.get(vol.id).status}")
        if not returned:
            stack.cluster.start_agent(b, 2, "--simulate-reboot")
            wait_for(lambda: _agent_status(stack, b) == "alive", timeout=30, what=f"{b} alive")
    cleanup(admin, nova, vol.id)


def _state(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def _lv(stack: Stack, name: str) -> dict[str, Any]:
    """The LV in the simulated cluster's state file (lock holders, devices, tags)."""
    doc = _state(stack.cluster.tmp / "cluster.json")
    for vg in doc[VG_KEY].values():
        if name in vg["lvs"]:
            return dict(vg["lvs"][name])
    raise AssertionError(f"no LV {name} in the simulated VG")


def _expire_leases(path: Path, host: str) -> None:
    """What the other hosts' sanlock does once a dead host's lease expired: its LV locks are
    free (SimulatedCluster.expireLeases, done on the state file under its lock)."""
    with open(f"{path}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        doc = _state(path)
        for vg in doc[VG_KEY].values():
            for lv in vg["lvs"].values():
                if lv.get("exclusiveHolder") == host:
                    del lv["exclusiveHolder"]
                lv["sharedHolders"] = [h for h in lv.get("sharedHolders", []) if h != host]
        tmp = Path(f"{path}.tmp.test")
        tmp.write_text(json.dumps(doc, sort_keys=True))
        os.replace(tmp, path)


def _agent(stack: Stack, host: str) -> dict[str, Any]:
    for agent in stack.ctl.list_agents(what="test: agents").get("agents", []):
        if agent.get("host") == host:
            return dict(agent)
    raise AssertionError(f"no agent {host}")


def _agent_status(stack: Stack, host: str) -> str | None:
    agents = stack.ctl.list_agents(what="test: agents")
    for agent in agents.get("agents", []):
        if agent.get("host") == host:
            return str(agent.get("status"))
    return None
