"""Evacuate on real lvm2 + lvmlockd + sanlock (issue 14): the controller releases the
activation of a host whose agent is down (a live agent tags the LV `aos-released.<host>` in the
shared VG), sanlock keeps the dead host's lock while its lease lives, and the returning agent
gives the LV up instead of restoring it.

The tests run their own controller (debug build, directed calls on topic.server) with short
liveness thresholds, so a stopped agent counts as down after ~20 s, not the default 60 s. It
hears the lab agents' announcements (a fanout) next to the session's controller.

- test_evacuate_agent_down_host_alive (~30 s): lab1's agent is killed, lab1 itself runs on.
  Its sanlock keeps renewing the lease, so lab2's activation is refused (the message says why)
  until lab1's agent returns: it deactivates the LV (not open) and removes its tag.
- test_evacuate_really_stopped_host (~2 min; skipped with AOS_LAB_CRASH=0, like the crash
  reboot test): lab1 is reset holding the lease and boots without its agent. lab2's activation
  is refused until lab1's old lease expires (8 x io_timeout + 60 s), then works; lab1's agent,
  started afterwards, drops its record instead of restoring it.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import oslo_messaging
import pytest

from conftest import event, stop_process, swift_bin_dir
from labvm import LAB_CONTROLLER_TOPIC, VG, Guest

pytestmark = pytest.mark.timeout(900)
MiB = 1 << 20


@pytest.fixture
def ctl(lab, amqp_url: str, oslo_transport: Any, hosts: tuple[str, str],
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A controller of this test: stale after 8 s, down after 20 s (the agents announce every 5 s)."""
    binary = swift_bin_dir() / "aos-controller"
    name = f"evac-ctl-{uuid.uuid4().hex[:6]}"
    log_path = tmp_path_factory.mktemp("evac-controller") / "controller.log"
    with open(log_path, "wb") as err:
        proc = subprocess.Popen(
            [str(binary), "--set", f"DEFAULT.transport_url={amqp_url}", "--set", f"DEFAULT.host={name}",
             "--set", f"controller.topic={LAB_CONTROLLER_TOPIC}", "--set", "controller.agent_response_timeout=120",
             "--set", "controller.agent_stale_after=8", "--set", "controller.agent_down_after=20"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY"), f"controller did not start: {line!r}\n{log_path.read_text()[-3000:]}"
        target = oslo_messaging.Target(topic=LAB_CONTROLLER_TOPIC, server=name, version="1.0")
        client = oslo_messaging.get_rpc_client(oslo_transport, target, timeout=180)
        wait_status(client, {h: "alive" for h in hosts}, timeout=60)
        yield client
    finally:
        stop_process(proc, grace=15)


def statuses(ctl: Any) -> dict[str, str]:
    return {a["host"]: a["status"] for a in ctl.call({}, "list_agents")["agents"]}


def wait_status(ctl: Any, want: dict[str, str], timeout: float) -> float:
    t0 = time.monotonic()
    while True:
        now = statuses(ctl)
        if all(now.get(h) == s for h, s in want.items()):
            return time.monotonic() - t0
        assert time.monotonic() - t0 < timeout, f"agents not {want} after {timeout}s: {now}"
        time.sleep(0.5)  # polling interval, not synchronisation


def lv_fields(g: Guest, name: str) -> tuple[bool, list[str]]:
    """(active on this guest, tags) from the guest's own lvs."""
    r = g.run_cmd(["lvs", "--noheadings", "--separator", "|", "-o", "lv_active,lv_tags", f"{VG}/{name}"],
                  timeout=60, check=True)
    active, _, tags = r.stdout.strip().partition("|")
    return active.strip() == "active", [t for t in tags.strip().split(",") if t]


def remote(fn, *args, **kwargs) -> oslo_messaging.RemoteError:
    with pytest.raises(oslo_messaging.RemoteError) as info:
        fn(*args, **kwargs)
    return info.value


def active_on(ctl: Any, name: str) -> dict[str, str]:
    return {a["host"]: a["mode"] for a in ctl.call({}, "get_volume", name=name)["active_on"]}


def release_on_down_host(ctl: Any, g1: Guest, g2: Guest, h1: str, h2: str, name: str) -> None:
    """lab1's agent is gone: the controller releases its activation through lab2's agent."""
    event("evacuate: agent stopped -> down in the controller", wait_status(ctl, {h1: "down", h2: "alive"}, timeout=120))
    t0 = time.monotonic()
    r = ctl.call({}, "deactivate_volume", name=name, host=h1)
    event("evacuate: deactivate_volume on the down host (release)", time.monotonic() - t0)
    assert r["released"] is True and r["released_by"] == h2 and r["changed"] is True, r
    assert active_on(ctl, name) == {}, "the controller forgot lab1's activation"
    assert f"aos-released.{h1}" in lv_fields(g2, name)[1], "lab2 sees the tag in the VG metadata"
    again = ctl.call({}, "deactivate_volume", name=name, host=h1)
    assert again["released"] is True and again["changed"] is False, again


def test_evacuate_agent_down_host_alive(ctl, hosts, g1: Guest, g2: Guest) -> None:
    h1, h2 = hosts
    name = f"volume-evac-{uuid.uuid4().hex[:6]}"
    ctl.call({}, "create_volume", name=name, size_bytes=8 * MiB)
    try:
        ctl.call({}, "activate_volume", name=name, host=h1, mode="exclusive")
        g1.sh("lab-agent kill", check=True)  # SIGKILL: lab1's lvmlockd and sanlock run on
        release_on_down_host(ctl, g1, g2, h1, h2, name)
        assert lv_fields(g1, name)[0], "still active on lab1: nothing ran there"
        # lab1's sanlock renews its lease: the lock stays, and the error says what to do.
        err = remote(ctl.call, {}, "activate_volume", name=name, host=h2, mode="exclusive")
        assert err.exc_type == "LockedByOtherHost", err
        assert h1 in err.value and "lease expires" in err.value and "start that agent" in err.value, err.value
        # lab1's agent returns: the LV is active there but not open, so it gives it up.
        t0 = time.monotonic()
        g1.agent_start()
        event("evacuate: lab1's agent back to READY (released LV deactivated)", time.monotonic() - t0)
        active, tags = lv_fields(g1, name)
        assert not active, "lab1's agent deactivated the released LV"
        assert f"aos-released.{h1}" not in tags, tags
        log = g1.agent_log().split("==== lab-agent start")[-1]
        assert "not restored" in log, log[-3000:]
        wait_status(ctl, {h1: "alive"}, timeout=60)
        ctl.call({}, "activate_volume", name=name, host=h2, mode="exclusive")
        assert active_on(ctl, name) == {h2: "exclusive"}
    finally:
        if "READY host=" not in g1.agent_output():
            g1.agent_start()
        cleanup(ctl, hosts, name)


@pytest.mark.skipif(os.environ.get("AOS_LAB_CRASH", "1") == "0", reason="AOS_LAB_CRASH=0")
def test_evacuate_really_stopped_host(ctl, hosts, g1: Guest, g2: Guest) -> None:
    h1, h2 = hosts
    name = f"volume-evac-{uuid.uuid4().hex[:6]}"
    ctl.call({}, "create_volume", name=name, size_bytes=8 * MiB)
    autostart = "/var/lib/aos-agent/autostart"
    try:
        ctl.call({}, "activate_volume", name=name, host=h1, mode="exclusive")
        # lab1 loses power holding the lease, and comes back without its agent (the host is
        # "stopped" for the cluster until the agent is started below).
        g1.sh(f"rm -f {autostart} && sync", check=True)
        boot_id = g1.boot_id()
        t_crash = time.monotonic()
        g1.sh("lab-reboot crash", check=True)
        g1.qga.close()
        release_on_down_host(ctl, g1, g2, h1, h2, name)
        # lab2's activation: refused while lab1's old lease lives, then it works.
        refused = 0
        while True:
            try:
                ctl.call({}, "activate_volume", name=name, host=h2, mode="exclusive")
                break
            except oslo_messaging.RemoteError as e:
                assert e.exc_type == "LockedByOtherHost", e
                assert h1 in e.value and "lease expires" in e.value, e.value
                refused += 1
                assert time.monotonic() - t_crash < 400, "lab1's lease did not expire"
                time.sleep(5)  # polling interval, not synchronisation
        event("evacuate: lab1 reset -> lab2 holds the LV (lease expiry)", time.monotonic() - t_crash)
        print(f"lab2's activation refused {refused} times before lab1's lease expired")
        assert refused > 0, "the first activation on lab2 was expected to meet lab1's live lease"
        g1.wait_booted(timeout=300, previous_boot=boot_id)
        t0 = time.monotonic()
        g1.agent_start(timeout=600)
        event("evacuate: lab1's agent started after the reset -> READY", time.monotonic() - t0)
        active, tags = lv_fields(g1, name)
        assert not active and f"aos-released.{h1}" not in tags, (active, tags)
        h = next(a for a in ctl.call({}, "list_agents")["agents"] if a["host"] == h1)
        assert h["restore_failures"] == [], h
        assert "not restored" in g1.agent_log().split("==== lab-agent start")[-1]
        assert active_on(ctl, name) == {h2: "exclusive"}
    finally:
        g1.sh(f"touch {autostart} && sync")
        if "READY host=" not in g1.agent_output():
            g1.agent_start(timeout=600)
        cleanup(ctl, hosts, name)


def cleanup(ctl: Any, hosts: tuple[str, str], name: str) -> None:
    for h in hosts:
        try:
            ctl.call({}, "deactivate_volume", name=name, host=h)
        except oslo_messaging.RemoteError:
            pass
    try:
        ctl.call({}, "delete_volume", name=name)
    except oslo_messaging.RemoteError:
        pass
