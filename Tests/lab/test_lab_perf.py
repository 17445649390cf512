"""Real-LVM figures in the lab (issue 17): the agent's overhead over the bare LVM commands, and a
burst of creates sent at once. Numbers are printed into the lab summary (and RUN/perf-*.json),
never asserted; what is asserted is behaviour: every call answered, nothing leaked.

- `test_agent_overhead_over_bare_lvm` (opt-in: AOS_LAB_PERF_N=N iterations, e.g. 5; ~30 s
  each here): in lab1, interleaved, the commands each agent operation runs (create_lv = lvcreate
  -an -Zn + lvs; activate_lv = lvs + lvchange -aey; deactivate_lv = lvs + lvchange -an;
  delete_lv with volume_clear none = lvs + lvs + lvremove) with the agent's argv and environment
  (env -i, LC_ALL=C, LVM_SUPPRESS_FD_WARNINGS=1), timed by bash's $EPOCHREALTIME in the guest;
  then the same four operations through the broker from the host (oslo.messaging caller), with
  the agent's own view of each call: its aos_rpc_request_duration_seconds (the agent is
  restarted with a metrics listener inside the guest, and restarted without it afterwards) and
  the durations it logged for the call's commands (`lvm command finished … duration_ms`). Also
  the round trip of `health`, which runs no command. docs/performance.md "Real LVM in the lab".
- `test_burst_of_creates` (AOS_LAB_BURST=N creates, 0 or unset skips; N=200 for issue 17,
  AOS_LAB_BURST_HOSTS=2 spreads them over both agents): N create_lv sent at once, each from its
  own thread. Every call must be answered; a failure must carry a code (counted by code), and a
  retry of each failed one must succeed. A sampler in each guest counts the LVM processes alive
  (pgrep) all along; the agent's bound is `max_concurrent_lvm` (4).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from conftest import report
from labvm import VG, Guest

pytestmark = pytest.mark.timeout(1800)

MiB = 1 << 20
PERF_N = int(os.environ.get("AOS_LAB_PERF_N", "0") or 0)
BURST = int(os.environ.get("AOS_LAB_BURST", "0") or 0)
BURST_HOSTS = int(os.environ.get("AOS_LAB_BURST_HOSTS", "1") or 1)

# The agent's child environment (HostCommands.CommandRunner.childEnvironment).
AGENT_ENV = ("env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "LVM_SUPPRESS_FD_WARNINGS=1")
# SharedLVM.LVMReport.lvFields, as `lvs` gets them from the agent.
LV_FIELDS = ("lv_name,vg_name,lv_uuid,lv_size,lv_attr,lv_active,lv_active_locally,lv_active_exclusively,"
             "lv_lockargs,lv_tags")
LVS = f"lvs --reportformat json --units b --nosuffix -o {LV_FIELDS}"
LVM_PROGRAMS = "lvcreate|lvchange|lvremove|lvs|vgs|lvextend|lvrename|pvs|vgchange"


def bare_commands(name: str) -> dict[str, list[tuple[str, str]]]:
    """The commands each agent operation runs, in its order (LVMCommands + LVOperations)."""
    lv = f"{VG}/{name}"
    return {
        "create_lv": [("lvcreate", f"lvcreate -an -Zn -n {name} -L {4 * MiB}b {VG}"), ("lvs", f"{LVS} {lv}")],
        "activate_lv": [("lvs", f"{LVS} {lv}"), ("lvchange", f"lvchange -aey {lv}")],
        "deactivate_lv": [("lvs", f"{LVS} {lv}"), ("lvchange", f"lvchange -an {lv}")],
        # deleteLV reads the LV, then RealLVMBackend.removeLV reads it again (its own guard).
        "delete_lv": [("lvs", f"{LVS} {lv}"), ("lvs", f"{LVS} {lv}"), ("lvremove", f"lvremove {lv}")],
    }


def time_bare(g: Guest, name: str) -> dict[str, list[float]]:
    """Runs the four operations' commands once in the guest (bash, the agent's environment);
    ms per command. The stopwatch is bash's $EPOCHREALTIME (no fork: `date` costs ~50-200 ms
    under TCG). Also 'timer' = two readings with nothing between."""
    lines = ["set -e",
             'a=${EPOCHREALTIME/./}; b=${EPOCHREALTIME/./}; echo "timer 0 $((10#$b - 10#$a))"']
    for op, cmds in bare_commands(name).items():
        for k, (_, cmd) in enumerate(cmds):
            lines.append(f'a=${{EPOCHREALTIME/./}}; {cmd} >/dev/null; b=${{EPOCHREALTIME/./}}; '
                         f'echo "{op} {k} $((10#$b - 10#$a))"')
    r = g.run_cmd([*AGENT_ENV, "bash", "-c", "\n".join(lines)], timeout=300)
    assert r.exit == 0, f"bare LVM commands failed: {r.stderr[-2000:]}"
    out: dict[str, list[float]] = {}
    for line in r.stdout.splitlines():
        op, _, us = line.split()
        out.setdefault(op, []).append(int(us) / 1e3)
    return out


METRIC = re.compile(r'^aos_rpc_request_duration_seconds_(sum|count)\{method="([a-z_]+)"\} ([0-9.e+-]+)$')


def agent_handling(g: Guest) -> dict[str, tuple[float, int]]:
    """The agent's aos_rpc_request_duration_seconds (work slot -> reply) per method: (sum s,
    count), read from its metrics listener inside the guest (bash /dev/tcp: no HTTP client)."""
    r = g.run_cmd(["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9468; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; "
                   "cat <&3"], timeout=60)
    assert r.exit == 0, r.stderr
    out: dict[str, list[float]] = {}
    for line in r.stdout.splitlines():
        m = METRIC.match(line.strip())
        if m:
            out.setdefault(m.group(2), [0.0, 0.0])[0 if m.group(1) == "sum" else 1] = float(m.group(3))
    return {k: (v[0], int(v[1])) for k, v in out.items()}


LOG_LINE = re.compile(r"duration_ms=(\d+)")


def agent_command_ms(g: Guest, start: int, name: str, expect: int, timeout: float = 20) -> tuple[int, list[int]]:
    """The durations the agent logged after byte `start` of its log for commands naming `name`
    (`expect` of them; the log reaches the host through 9p, so wait for them). Returns the new
    log offset and the durations."""
    deadline = time.monotonic() + timeout
    while True:
        text = g.agent_log()
        found = [int(m.group(1)) for line in text[start:].splitlines()
                 if "lvm command finished" in line and (f"{VG}/{name} " in line + " " or f"-n {name} " in line)
                 for m in [LOG_LINE.search(line)] if m]
        if len(found) >= expect or time.monotonic() > deadline:
            return len(text), found
        time.sleep(0.1)


def med(v: list[float]) -> str:
    if not v:
        return "     n/a"
    return f"{statistics.median(v):8.1f}"


def rng(v: list[float]) -> str:
    if not v:
        return ""
    return f"{min(v):.1f}-{max(v):.1f}"


@pytest.mark.skipif(PERF_N <= 0, reason="opt-in: AOS_LAB_PERF_N=N runs N iterations (~30 s each here)")
def test_agent_overhead_over_bare_lvm(lab, g1: Guest, hosts, rpc, lv, amqp_url) -> None:
    n = PERF_N
    ops = list(bare_commands("x"))
    # The agent's own view of each call: its metrics listener (inside the guest only), with the
    # periodic samples (vgs, sanlock) pushed out of the way.
    g1.sh("lab-agent stop", check=True)
    g1.write_agent_config(amqp_url, hosts[0], extra="metrics_listen = 127.0.0.1:9468\nmetrics_interval = 3600\n")
    g1.agent_start()
    a = rpc(hosts[0], label="perf")
    cols = ("bare", "agent_cmds", "handling", "rpc")
    ms: dict[str, dict[str, list[float]]] = {op: {c: [] for c in cols} for op in ops}
    ping_ms: list[float] = []
    timer: list[float] = []
    try:
        offset = len(g1.agent_log())
        for i in range(n):
            bare = time_bare(g1, f"{lv}-bare-{i}")  # interleaved: bare and RPC under the same load
            timer += bare.pop("timer")
            for op in ops:
                ms[op]["bare"].append(sum(bare[op]))
            name = f"{lv}-rpc-{i}"
            for op, kwargs in (("create_lv", {"size_bytes": 4 * MiB}), ("activate_lv", {"mode": "exclusive"}),
                               ("deactivate_lv", {}), ("delete_lv", {"volume_clear": "none"})):
                before = agent_handling(g1).get(op, (0.0, 0))
                t0 = time.perf_counter()
                a.call(op, vg=VG, name=name, **kwargs)
                ms[op]["rpc"].append((time.perf_counter() - t0) * 1e3)
                after = agent_handling(g1).get(op, (0.0, 0))
                assert after[1] == before[1] + 1, f"{op}: the agent's request count went {before} -> {after}"
                ms[op]["handling"].append((after[0] - before[0]) * 1e3)
                want = len(bare_commands(name)[op])
                offset, found = agent_command_ms(g1, offset, name, expect=want)
                assert len(found) == want, f"{op} {name}: the agent logged {found} (expected {want} commands)"
                ms[op]["agent_cmds"].append(float(sum(found)))
            t0 = time.perf_counter()
            a.call("health")
            ping_ms.append((time.perf_counter() - t0) * 1e3)
    finally:
        g1.sh(f"for l in $(lvs --noheadings -o lv_name {VG} | grep -- '{lv}'); do "
              f"lvchange -an {VG}/$l; lvremove -y {VG}/$l; done >/dev/null 2>&1; true", timeout=300)
        g1.sh("lab-agent stop", check=True)
        g1.write_agent_config(amqp_url, hosts[0])
        g1.agent_start()

    def diff(x: list[float], y: list[float]) -> list[float]:
        return [p - q for p, q in zip(x, y, strict=True)]

    lines = [f"agent overhead over the bare LVM commands, lab1 (qemu TCG, 1 vCPU), {n} iterations interleaved; "
             "ms, median and range:",
             f"  stopwatch floor in the guest ($EPOCHREALTIME twice): {med(timer).strip()} ({rng(timer)})",
             f"  `health` round trip (broker + oslo + dispatch, no command): {med(ping_ms).strip()} ({rng(ping_ms)})",
             f"  {'operation':<14} {'bare':>8} {'agent cmds':>10} {'handling':>9} {'RPC':>8} {'RPC-bare':>9}"
             f" {'transport':>9} {'agent own':>9}"]
    results: dict[str, Any] = {"n": n, "timer_ms": timer, "health_ms": ping_ms, "ops": ms}
    for op in ops:
        m = ms[op]
        derived = (diff(m["rpc"], m["bare"]), diff(m["rpc"], m["handling"]), diff(m["handling"], m["agent_cmds"]))
        lines.append(f"  {op:<14} {med(m['bare']):>8} {med(m['agent_cmds']):>10} {med(m['handling']):>9}"
                     f" {med(m['rpc']):>8} {med(derived[0]):>9} {med(derived[1]):>9} {med(derived[2]):>9}")
        lines.append(f"  {'':<14} {rng(m['bare']):>8} {rng(m['agent_cmds']):>10} {rng(m['handling']):>9}"
                     f" {rng(m['rpc']):>8} {rng(derived[0]):>9} {rng(derived[1]):>9} {rng(derived[2]):>9}")
    lines += ["  bare: the operation's commands by bash in the guest; agent cmds: their durations in the agent's log;",
              "  handling: the agent's aos_rpc_request_duration_seconds (work slot -> reply); RPC: the oslo caller;",
              "  transport = RPC - handling (broker, oslo, decode, queue); agent own = handling - agent cmds"]
    report("\n".join(lines))
    (lab.run / "perf-overhead.json").write_text(json.dumps(results, indent=1) + "\n")


SAMPLER = f"""#!/bin/sh
# How many LVM processes are alive, sampled until /run/lvm-sampler.on goes (test_lab_perf.py).
while [ -e /run/lvm-sampler.on ]; do pgrep -c -x '{LVM_PROGRAMS}'; done >/run/lvm-sampler.out 2>/dev/null
"""


def sampler_start(g: Guest) -> None:
    (g.share / "lvm-sampler.sh").write_text(SAMPLER)
    g.sh("rm -f /run/lvm-sampler.out; touch /run/lvm-sampler.on; "
         "setsid sh /mnt/host/$(hostname)/lvm-sampler.sh </dev/null >/dev/null 2>&1 &", check=True)


def sampler_stop(g: Guest) -> list[int]:
    g.sh("rm -f /run/lvm-sampler.on", check=True)
    r = g.sh("sleep 1; cat /run/lvm-sampler.out", check=True)
    return [int(x) for x in r.stdout.split() if x.isdigit()]


@pytest.mark.skipif(BURST <= 0, reason="opt-in: AOS_LAB_BURST=N sends N creates at once (200 for issue 17)")
def test_burst_of_creates(lab, g1: Guest, g2: Guest, hosts, rpc, lv) -> None:
    import oslo_messaging

    clients = [rpc(h, timeout=1800, label="burst") for h in hosts[:max(1, min(2, BURST_HOSTS))]]
    guests = [g1, g2][:len(clients)]
    tag = uuid.uuid4().hex[:4]
    names = [f"{lv}-{tag}-{i:03d}" for i in range(BURST)]
    outcome: dict[str, str] = {}

    def create(i: int) -> tuple[str, str, float]:
        t0 = time.perf_counter()
        try:
            clients[i % len(clients)].call("create_lv", vg=VG, name=names[i], size_bytes=4 * MiB)
            return names[i], "ok", time.perf_counter() - t0
        except oslo_messaging.RemoteError as e:
            return names[i], f"{e.exc_type}: {str(e.value)[:200]}", time.perf_counter() - t0
        except Exception as e:  # noqa: BLE001 - counted and reported (a timeout is a failure of the test)
            return names[i], f"{type(e).__name__}: {e}", time.perf_counter() - t0

    for g in guests:
        sampler_start(g)
    durations: list[float] = []
    retried: dict[str, str] = {}
    try:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=BURST) as pool:
            for name, result, secs in pool.map(create, range(BURST)):
                outcome[name] = result
                durations.append(secs)
        total = time.perf_counter() - t0
        samples = {g.name: sampler_stop(g) for g in guests}
        for i, name in enumerate(names):  # a retry of each failed create, one at a time
            if outcome[name] != "ok":
                try:
                    clients[i % len(clients)].call("create_lv", vg=VG, name=name, size_bytes=4 * MiB)
                    retried[name] = "ok"
                except Exception as e:  # noqa: BLE001 - reported below
                    retried[name] = str(e)[:200]
        listed = {x["name"] for x in clients[0].call("list_lvs", vg=VG)["lvs"]}
    finally:
        for g in guests:
            g.sh("rm -f /run/lvm-sampler.on")
        g1.sh(f"lvs --noheadings -o lv_name {VG} | grep -- '{lv}-{tag}' | sed 's|^ *|{VG}/|' | "
              "xargs -r -n 50 lvremove -y >/dev/null 2>&1; true", timeout=900)

    codes = Counter(v.split(":")[0] for v in outcome.values())
    max_seen = {name: max(s) if s else 0 for name, s in samples.items()}
    lines = [f"burst of {BURST} create_lv (4 MiB) sent at once to {len(clients)} agent(s) "
             f"(max_concurrent_lvm 4 each):",
             f"  total {total:.1f} s, {BURST / total:.2f} creates/s; per call median "
             f"{statistics.median(durations):.1f} s, max {max(durations):.1f} s",
             f"  outcomes: {dict(codes)}; retried {len(retried)}, of which ok "
             f"{sum(v == 'ok' for v in retried.values())}",
             "  LVM processes alive at once (pgrep in the guest, "
             + ", ".join(f"{k}: max {v} over {len(samples[k])} samples" for k, v in max_seen.items()) + ")"]
    for name, result in outcome.items():
        if result != "ok":
            lines.append(f"  {name}: {result} -> retry: {retried.get(name)}")
    report("\n".join(lines))
    (lab.run / "perf-burst.json").write_text(json.dumps(
        {"n": BURST, "agents": len(clients), "total_s": total, "durations_s": durations, "outcomes": outcome,
         "retried": retried, "max_lvm_processes": max_seen}, indent=1) + "\n")
    assert not [n for n in names if n not in listed], "created LVs missing from list_lvs"
    assert all(v == "ok" for v in retried.values()), f"retries failed: {retried}"
    unclear = [v for v in outcome.values() if v != "ok" and not v.split(":")[0].strip()]
    assert not unclear, unclear
