"""The node agent on REAL lvm2 + lvmlockd + sanlock: two qemu guests share one disk, each runs
the release-built aos-agent with lvm_backend=real; the tests call them through the real
oslo.messaging from the host (issue 5). See docs/testing.md.

Order matters only for speed: the scenarios first, then the tests that stop lockspaces,
restart agents and reboot guests.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from typing import Any

import pytest

import scenarios as S
from conftest import event
from labvm import VG, Guest

pytestmark = pytest.mark.timeout(900)

MiB = 1 << 20
TRANSCRIPTS: dict[str, dict[str, S.Transcript]] = {}


def dev_size(g: Guest, lv: str) -> int | None:
    r = g.run_cmd(["blockdev", "--getsize64", f"/dev/{VG}/{lv}"], timeout=30)
    return int(r.stdout.strip()) if r.exit == 0 else None


# ---- the behaviour scenarios on both backends ------------------------------------------------------

@pytest.fixture(params=["real", "sim"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.mark.parametrize("scenario", list(S.SCENARIOS))
def test_scenario(scenario: str, backend: str, request: pytest.FixtureRequest, rpc) -> None:
    if backend == "real":
        g1, g2 = request.getfixturevalue("g1"), request.getfixturevalue("g2")
        host_a, host_b = request.getfixturevalue("hosts")
        guests = {"a": g1, "b": g2}
        device_size = lambda side, lv: dev_size(guests[side], lv)  # noqa: E731
    else:
        sim = request.getfixturevalue("sim")
        host_a, host_b = sim.hosts
        device_size = lambda side, lv: None  # noqa: E731
    prefix = f"volume-s{uuid.uuid4().hex[:6]}"
    t = S.Transcript({host_a: "A", host_b: "B", prefix: "LV"})
    TRANSCRIPTS.setdefault(scenario, {})[backend] = t
    a = rpc(host_a, label=backend)
    b = rpc(host_b, label=backend)
    ctx = S.Ctx(S.Side(a, "a", t), S.Side(b, "b", t), prefix, device_size)
    try:
        S.SCENARIOS[scenario](ctx)
    finally:
        S.cleanup(a, b, prefix)


def test_simulator_matches_real(lab, sim) -> None:
    """Same steps, same outcomes: success vs error class, and the same result fields.

    Message texts are compared too and every difference is written to RUN/sim-vs-real.txt;
    they do not fail the test (the simulator's texts are its own), the codes and results do."""
    report: list[str] = []
    hard: list[str] = []
    for scenario, runs in TRANSCRIPTS.items():
        if set(runs) != {"real", "sim"}:
            continue
        real, sim_t = runs["real"].steps, runs["sim"].steps
        for i in range(max(len(real), len(sim_t))):
            r = real[i] if i < len(real) else ("(missing)", None)
            s = sim_t[i] if i < len(sim_t) else ("(missing)", None)
            where = f"{scenario} step {i + 1}: {r[0]}"
            if r[0] != s[0] or r[1] is None or s[1] is None:
                hard.append(f"{where}\n    real: {r}\n    sim:  {s}")
                break
            ro, so = r[1], s[1]
            if ro.ok != so.ok or ro.exc_type != so.exc_type:
                hard.append(f"{where}\n    real: {ro}\n    sim:  {so}")
            elif ro.ok and ro.result != so.result:
                diff = _dict_diff(ro.result, so.result)
                if diff["any"]:
                    (hard if diff["hard"] else report).append(f"{where}\n    {diff['real']}")
            elif not ro.ok and re.sub(r"\d+", "N", ro.message) != re.sub(r"\d+", "N", so.message):
                # (numbers differ anyway: the real VG is not exactly the simulated 1 GiB)
                report.append(f"{where}\n    real: {ro.exc_type}: {ro.message}\n    sim:  {so.exc_type}: {so.message}")
    text = ("# simulated vs real: differences (scenarios of Tests/lab/scenarios.py)\n\n"
            "## codes / results (fail the test)\n" + ("\n".join(hard) or "none") +
            "\n\n## messages and informational fields\n" + ("\n".join(report) or "none") + "\n")
    (lab.run / "sim-vs-real.txt").write_text(text)
    print(text)
    assert not hard, "simulator and real LVM differ:\n" + "\n".join(hard)


# Result fields whose values legitimately differ between the backends: sizes of the VG itself
# (the real disk is not exactly 1 GiB), lease offsets/versions, pids, sanlock's daemon name.
SOFT_FIELDS = {"size_bytes", "free_bytes", "extent_count", "free_extent_count", "lv_count",
               "metadata_area_size_bytes", "metadata_area_free_bytes", "offset", "pid", "lease_version",
               "path", "version", "uuid", "daemon", "instance_id",
               # vg_info counts every host's pending wipes: other tests' jobs may still run.
               "wiping_lv_count", "wiping_bytes"}
# Fields that are informational: reported, never fail the comparison. health().preflight: the
# real backend's start-up host check (its WARNs about this lab); the simulated backend has none.
INFO_FIELDS = {"attr", "preflight"}
NAMED_LISTS = {"lvs", "locks", "active_lvs"}
# The fields of a job (delete_lv's wipe) compared between the backends.
JOB_STABLE_FIELDS = ("kind", "host", "vg", "source", "total_bytes", "verify")


def _scenario_items(items: Any) -> Any:
    """Only this scenario's LVs (normalized to LV…): other tests' LVs may exist in the real VG."""
    if not isinstance(items, list):
        return items
    return sorted((x for x in items if isinstance(x, dict) and str(x.get("name", "")).startswith("LV")),
                  key=lambda x: str(x.get("name")))


def _job_shape(job: Any) -> Any:
    """A job as both backends must agree on it: ids, times, progress and the hidden LV's name
    (aos-wipe-<id>) differ by nature, the wipe method by device (Tests/lab/test_lab_jobs.py
    covers the jobs themselves)."""
    return {k: job.get(k) for k in JOB_STABLE_FIELDS} if isinstance(job, dict) else job


def _compare(real: Any, sim: Any, path: str, out: dict[str, list[str]]) -> None:
    if isinstance(real, dict) and isinstance(sim, dict):
        for k in sorted(set(real) | set(sim)):
            rv, sv = real.get(k, "<absent>"), sim.get(k, "<absent>")
            if k in NAMED_LISTS:
                rv, sv = _scenario_items(rv), _scenario_items(sv)
            if k == "job":
                rv, sv = _job_shape(rv), _job_shape(sv)
            if k in SOFT_FIELDS:
                continue
            _compare(rv, sv, f"{path}.{k}" if path else k, out)
        return
    if isinstance(real, list) and isinstance(sim, list) and len(real) == len(sim):
        for i, (rv, sv) in enumerate(zip(real, sim, strict=True)):
            _compare(rv, sv, f"{path}[{i}]", out)
        return
    if real != sim:
        leaf = path.rsplit(".", 1)[-1]
        out["info" if leaf in INFO_FIELDS else "hard"].append(f"{path}: real {real!r} / sim {sim!r}")


def _dict_diff(real: Any, sim: Any) -> dict[str, Any]:
    out: dict[str, list[str]] = {"hard": [], "info": []}
    _compare(real, sim, "", out)
    return {"hard": bool(out["hard"]), "any": bool(out["hard"] or out["info"]),
            "real": "; ".join(out["hard"] + out["info"]), "sim": ""}


# ---- real only: what the guests can show ------------------------------------------------------------

def test_pool_stats_match_vgs(g1: Guest, hosts, rpc) -> None:
    a = rpc(hosts[0])
    vg = a.call("vg_info", vg=VG)
    r = g1.run_cmd(["vgs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o",
                    "vg_uuid,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count,pv_count,vg_lock_type",
                    VG], check=True)
    row = json.loads(r.stdout)["report"][0]["vg"][0]
    assert vg["uuid"] == row["vg_uuid"]
    assert vg["size_bytes"] == int(row["vg_size"]) and vg["free_bytes"] == int(row["vg_free"]), (vg, row)
    assert vg["extent_size_bytes"] == int(row["vg_extent_size"])
    assert vg["extent_count"] == int(row["vg_extent_count"]) and vg["free_extent_count"] == int(row["vg_free_count"])
    assert vg["pv_count"] == int(row["pv_count"]) == 1 and vg["lock_type"] == row["vg_lock_type"] == "sanlock"


def hold_exclusive_and_shared(a: Any, ex: str, sh: str) -> None:
    """Creates LVs `ex` and `sh` (4 MiB) through agent `a` and activates them there: `ex`
    exclusively, `sh` shared."""
    for name in (ex, sh):
        a.call("create_lv", vg=VG, name=name, size_bytes=4 * MiB)
    a.call("activate_lv", vg=VG, name=ex, mode="exclusive")
    a.call("activate_lv", vg=VG, name=sh, mode="shared")


def test_lock_status_matches_sanlock(g1: Guest, g2: Guest, hosts, rpc, lv) -> None:
    a, b = rpc(hosts[0]), rpc(hosts[1])
    ex, sh = f"{lv}-ex", f"{lv}-sh"
    try:
        hold_exclusive_and_shared(a, ex, sh)
        b.call("activate_lv", vg=VG, name=sh, mode="shared")
        status = a.call("lock_status")
        raw = g1.run_cmd(["sanlock", "client", "status"], check=True).stdout
        uuids = {x["name"]: x["uuid"] for x in a.call("list_lvs", vg=VG)["lvs"]}
        # r lvm_<vg>:<LV UUID>:/dev/mapper/<vg>-lvmlock:<offset>:<SH | lease version> p <pid>
        raw_locks = {m.group(1): ("shared" if m.group(2) == "SH" else "exclusive")
                     for m in re.finditer(r"^r lvm_vglab:([^:]+):/dev/mapper/vglab-lvmlock:\d+:(\S+) p \d+", raw, re.M)}
        mine = {lk["lv_uuid"]: lk["mode"] for lk in status["locks"]}
        assert mine == raw_locks, (status, raw)
        assert mine[uuids[ex]] == "exclusive" and mine[uuids[sh]] == "shared"
        assert {(lk["name"], lk["mode"]) for lk in status["locks"]} >= {(ex, "exclusive"), (sh, "shared")}
        assert "s lvm_vglab:1:/dev/mapper/vglab-lvmlock:0" in raw
        assert status["lockspaces"][0]["host_id"] == 1 and status["lockspaces"][0]["vg"] == VG
        # lv_active_exclusively is a local device-mapper notion: LVM says "active exclusively"
        # even for the shared lock; the agent's mode comes from its record / sanlock.
        r = g1.run_cmd(["lvs", "--noheadings", "-o", "lv_active_exclusively", f"{VG}/{sh}"], check=True)
        assert "active exclusively" in r.stdout
        assert a.call("lv_info", vg=VG, name=sh)["mode"] == "shared"
    finally:
        S.cleanup(a, b, lv)


def test_busy_while_device_open(g1: Guest, hosts, rpc, lv) -> None:
    a, b = rpc(hosts[0]), rpc(hosts[1])
    try:
        a.call("create_lv", vg=VG, name=lv, size_bytes=4 * MiB)
        a.call("activate_lv", vg=VG, name=lv, mode="exclusive")
        # Hold the device open as a VM would.
        g1.sh(f"setsid sh -c 'exec 3</dev/{VG}/{lv}; exec sleep 300' </dev/null >/dev/null 2>&1 & "
              f"echo $! >/run/holder.pid", check=True)
        deadline = time.monotonic() + 10
        while not a.call("lv_info", vg=VG, name=lv)["device_open"]:
            assert time.monotonic() < deadline, "lv_info never showed the device open"
            time.sleep(0.3)
        t0 = time.monotonic()
        err = a.error("deactivate_lv", vg=VG, name=lv)
        event("deactivate_lv refused while open (lvchange -an retries)", time.monotonic() - t0)
        assert err.exc_type == "Busy", err
        assert a.error("delete_lv", vg=VG, name=lv).exc_type == "Busy"
        assert a.call("lv_info", vg=VG, name=lv)["mode"] == "exclusive"
        g1.sh("kill $(cat /run/holder.pid)", check=True)
        time.sleep(0.5)
        assert a.call("deactivate_lv", vg=VG, name=lv)["changed"] is True
    finally:
        g1.sh("[ -s /run/holder.pid ] && kill $(cat /run/holder.pid) 2>/dev/null; rm -f /run/holder.pid")
        S.cleanup(a, b, lv)


def test_lockspace_not_started(g1: Guest, g2: Guest, hosts, rpc, lv) -> None:
    a, b = rpc(hosts[0]), rpc(hosts[1])
    try:
        a.call("create_lv", vg=VG, name=lv, size_bytes=4 * MiB)
        b.call("activate_lv", vg=VG, name=lv, mode="exclusive")
        # lock-stop with an active LV is refused by LVM.
        r = g2.run_cmd(["vgchange", "--lock-stop", VG])
        assert r.exit == 5 and "LVs must first be deactivated" in r.stderr, r
        b.call("deactivate_lv", vg=VG, name=lv)
        g2.run_cmd(["vgchange", "--lock-stop", VG], check=True)
        assert b.call("vg_info", vg=VG)["lockspace"] == "not_started"
        for method, kwargs in [("create_lv", {"name": f"{lv}-2", "size_bytes": 4 * MiB}),
                               ("activate_lv", {"name": lv, "mode": "exclusive"}),
                               ("activate_lv", {"name": lv, "mode": "shared"}),
                               ("extend_lv", {"name": lv, "size_bytes": 8 * MiB}),
                               ("delete_lv", {"name": lv, "volume_clear": "none"})]:
            err = b.error(method, vg=VG, **kwargs)
            assert err.exc_type == "LockspaceNotStarted", (method, err)
            assert "lockspace" in err.value.lower() or "lock" in err.value.lower(), err.value
        # Reports still work (LVM reads the VG without a lock).
        assert b.call("lv_info", vg=VG, name=lv)["active"] is False
        # The other host is unaffected.
        assert a.call("activate_lv", vg=VG, name=lv, mode="shared")["changed"] is True
        a.call("deactivate_lv", vg=VG, name=lv)
    finally:
        r = g2.run_cmd(["vgchange", "--lock-start", VG], timeout=300)
        event("vgchange --lock-start (lab2, after --lock-stop)", r.seconds)
        S.cleanup(a, b, lv)
    assert b.call("vg_info", vg=VG)["lockspace"] == "started"


# ---- real only: agent restarts, boot order, reboots ------------------------------------------------

def active_modes(client) -> dict[str, str]:
    return {x["name"]: x["mode"] for x in client.call("health")["active_lvs"]}


def test_agent_restart_keeps_and_restores_activations(g1: Guest, hosts, rpc, lv) -> None:
    a, b = rpc(hosts[0]), rpc(hosts[1])
    ex, sh = f"{lv}-ex", f"{lv}-sh"
    try:
        hold_exclusive_and_shared(a, ex, sh)
        g1.agent_stop()
        assert "LVs are left as they are" in g1.agent_log()
        assert b.error("activate_lv", vg=VG, name=ex, mode="exclusive").exc_type == "LockedByOtherHost"
        event("agent restart to READY (lab1, 2 LVs held)", g1.agent_start())
        h = a.call("health")
        assert h["ready"] is True and h["restore_failures"] == [], h
        assert active_modes(a) == {ex: "exclusive", sh: "shared"}
        assert a.call("activate_lv", vg=VG, name=ex, mode="exclusive")["changed"] is False
        assert b.call("activate_lv", vg=VG, name=sh, mode="shared")["changed"] is True
    finally:
        S.cleanup(a, b, lv)


def _hide_pvs(g: Guest, hide: bool) -> None:
    if hide:
        g.sh("sed -i 's/^devices {$/devices {\\n\\tglobal_filter = [ \"r|.*|\" ]  # lab-hide-pvs/' "
             "/etc/lvm/lvm.conf && grep -q lab-hide-pvs /etc/lvm/lvm.conf", check=True)
    else:
        g.sh("sed -i '/lab-hide-pvs/d' /etc/lvm/lvm.conf", check=True)


def test_boot_agent_waits_for_pvs_then_starts_lockspace(g2: Guest, hosts, rpc) -> None:
    """The agent starts before the VG's PVs are visible and its lockspace is up: it waits, runs
    vgchange --lock-start itself, and only then prints READY (and serves RPCs)."""
    b = rpc(hosts[1])
    g2.agent_stop()
    g2.run_cmd(["vgchange", "--lock-stop", VG], check=True)
    _hide_pvs(g2, True)
    try:
        assert f"s lvm_{VG}:" not in g2.run_cmd(["sanlock", "client", "status"]).stdout
        g2.agent_start(wait_ready=False)
        time.sleep(6)
        assert "READY" not in g2.agent_output(), "READY before the PVs were there"
        assert f"s lvm_{VG}:" not in g2.run_cmd(["sanlock", "client", "status"]).stdout
        t0 = time.monotonic()
        _hide_pvs(g2, False)  # the LUN shows up (as after iSCSI login + multipath)
        waited = g2.agent_wait_ready(timeout=300)
        event("PVs appear -> agent READY (lock-start inside)", waited)
        assert f"s lvm_{VG}:2:" in g2.run_cmd(["sanlock", "client", "status"]).stdout
        log = g2.agent_log().split("==== lab-agent start")[-1]
        assert "PVs present" in log and "lockspace started" in log and "agent ready" in log, log[-3000:]
        assert log.index("PVs present") < log.index("lockspace started") < log.index("agent ready")
        h = b.call("health")
        assert h["ready"] is True and h["vgs"] == {VG: {"lockspace": "started"}}, h
        assert time.monotonic() - t0 < 300
    finally:
        _hide_pvs(g2, False)
        if "READY" not in g2.agent_output():
            g2.agent_stop()
            g2.run_cmd(["vgchange", "--lock-start", VG], timeout=300)
            g2.agent_start()


def _reboot(g: Guest, how: str) -> float:
    boot_id = g.boot_id()
    t0 = time.monotonic()
    g.sh(f"lab-reboot {how}", check=True)
    g.qga.close()
    g.wait_booted(timeout=300, previous_boot=boot_id)
    event(f"{how} reboot {g.name}: reset -> guest up", time.monotonic() - t0)
    g.agent_wait_ready(timeout=600)
    total = time.monotonic() - t0
    event(f"{how} reboot {g.name}: reset -> agent READY (lock start + restore)", total)
    return total


def test_clean_reboot_restores_activations(g1: Guest, hosts, rpc, lv) -> None:
    """An orderly reboot (agent stopped, LVs deactivated, lockspace stopped): the agent, started
    at boot, starts the lockspace and re-activates what it held, before READY."""
    a, b = rpc(hosts[0]), rpc(hosts[1])
    ex, sh = f"{lv}-ex", f"{lv}-sh"
    try:
        hold_exclusive_and_shared(a, ex, sh)
        b.call("activate_lv", vg=VG, name=sh, mode="shared")
        _reboot(g1, "clean")
        h = a.call("health")
        assert h["ready"] is True and h["restore_failures"] == [], h
        assert active_modes(a) == {ex: "exclusive", sh: "shared"}
        locks = {(lk["name"], lk["mode"]) for lk in a.call("lock_status")["locks"]}
        assert locks == {(ex, "exclusive"), (sh, "shared")}
        assert dev_size(g1, ex) == 4 * MiB and dev_size(g1, sh) == 4 * MiB
        assert "restored activation" in g1.agent_log()
        assert b.error("activate_lv", vg=VG, name=ex, mode="exclusive").exc_type == "LockedByOtherHost"
    finally:
        S.cleanup(a, b, lv)


@pytest.mark.skipif(os.environ.get("AOS_LAB_CRASH", "1") == "0", reason="AOS_LAB_CRASH=0")
def test_crash_reboot_restores_after_lease_expiry(g1: Guest, hosts, rpc, lv) -> None:
    """A crash (reset holding every lease): at boot, vgchange --lock-start must wait for the
    host's old delta lease to expire (sanlock: host_dead_seconds = 8 x io_timeout + 60 s), then
    the agent restores the exclusive activation it held."""
    a, b = rpc(hosts[0]), rpc(hosts[1])
    try:
        a.call("create_lv", vg=VG, name=lv, size_bytes=4 * MiB)
        a.call("activate_lv", vg=VG, name=lv, mode="exclusive")
        total = _reboot(g1, "crash")
        h = a.call("health")
        assert h["ready"] is True and h["restore_failures"] == [], h
        assert active_modes(a) == {lv: "exclusive"}
        assert b.error("activate_lv", vg=VG, name=lv, mode="exclusive").exc_type == "LockedByOtherHost"
        assert total > 60, "lock start after a crash was expected to wait for the old lease"
    finally:
        S.cleanup(a, b, lv)
