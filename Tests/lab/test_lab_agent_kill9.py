"""Agent SIGKILL at random points of activate/deactivate on REAL lvm2 + lvmlockd + sanlock
(issue 15; the simulator's many-iteration version is Tests/interop/test_chaos.py). Every lab run
does AOS_LAB_KILL9 iterations (default 2, ~20-30 s each here; 0 skips it; more for a campaign:
docs/reliability.md "kill -9 in the lab").

Each iteration starts an activate (exclusive) or a deactivate of one LV on lab1's agent, kills
the agent (`lab-agent kill`: SIGKILL) after a random 0-0.6 s, and starts it again. What must
hold: the agent's activation record (state_dir/activations.json) names the LV exactly when LVM
has it active on lab1, in the same mode; the interrupted step, simply retried, succeeds, and
the record still matches LVM afterwards. The seed and the LVM state after each kill are printed.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import threading
import time
from typing import Any

import pytest

import scenarios as S
from conftest import event, report
from labvm import VG, Guest

pytestmark = pytest.mark.timeout(1800)

MiB = 1 << 20
RECORD = "/var/lib/aos-agent/activations.json"


def record_doc(g: Guest) -> dict[str, Any]:
    r = g.sh(f"cat {RECORD} 2>/dev/null || echo '{{}}'", timeout=30, check=True)
    return json.loads(r.stdout or "{}")


def recorded(g: Guest, name: str) -> str | None:
    mine = [x for x in record_doc(g).get("activations", []) if x.get("vg") == VG and x.get("name") == name]
    return mine[0].get("mode") if mine else None


def leftovers(g: Guest, name: str) -> list[str]:
    """What a restart must have settled: intents for the LV, temporary files of the store."""
    found = [f"intent {x}" for x in record_doc(g).get("intents", []) if x.get("name") == name]
    tmp = g.sh(f"ls {RECORD}.tmp* 2>/dev/null; true", timeout=30).stdout.split()
    return found + [f"temporary file {t}" for t in tmp]


def lvm_mode(g: Guest, name: str) -> str | None:
    """'exclusive', 'shared' or None: how LVM has the LV active on this host."""
    r = g.run_cmd(["lvs", "--noheadings", "--separator", "|", "-o", "lv_active_locally,lv_active_exclusively",
                   f"{VG}/{name}"], timeout=60)
    assert r.exit == 0, r.stderr
    local, _, exclusive = r.stdout.strip().partition("|")
    if "active" not in local:
        return None
    return "exclusive" if "active" in exclusive else "shared"


def test_agent_kill9_at_random_points_on_real_lvm(g1: Guest, hosts, rpc, lv) -> None:
    iterations = int(os.environ.get("AOS_LAB_KILL9", "2") or 0)
    if iterations <= 0:
        pytest.skip("AOS_LAB_KILL9=0")
    # A call the killed agent had taken is never answered: a short timeout keeps iterations short
    # (the restart alone takes 6-12 s here); the retries and the checks get the usual one.
    killed, a, b = rpc(hosts[0], timeout=10), rpc(hosts[0]), rpc(hosts[1])
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    name = f"{lv}-k9"
    rows: list[str] = []
    mismatches: list[str] = []
    retry_failures: list[str] = []
    restarts: list[float] = []
    try:
        a.call("create_lv", vg=VG, name=name, size_bytes=4 * MiB)
        for i in range(iterations):
            op = "activate" if lvm_mode(g1, name) is None else "deactivate"
            outcome: dict[str, Any] = {}

            def run(op: str = op, outcome: dict[str, Any] = outcome) -> None:
                try:
                    if op == "activate":
                        outcome["result"] = killed.call("activate_lv", vg=VG, name=name, mode="exclusive")
                    else:
                        outcome["result"] = killed.call("deactivate_lv", vg=VG, name=name)
                except Exception as e:  # noqa: BLE001 - the agent is killed under it
                    outcome["error"] = type(e).__name__
            th = threading.Thread(target=run, daemon=True)
            delay = rng.uniform(0, 0.6)
            t0 = time.monotonic()
            th.start()
            while time.monotonic() - t0 < delay:
                time.sleep(0.01)  # the random kill point, not synchronisation
            g1.sh("lab-agent kill", check=True)
            restarts.append(g1.agent_start())
            th.join(timeout=40)
            after_kill = (lvm_mode(g1, name), recorded(g1, name))
            if after_kill[0] != after_kill[1]:
                mismatches.append(f"iteration {i} ({op}, kill after {delay:.2f} s): LVM {after_kill[0]}, "
                                  f"record {after_kill[1]}")
            mismatches += [f"iteration {i} ({op}) after the restart: {x}" for x in leftovers(g1, name)]
            try:  # the retry of the interrupted step
                if op == "activate":
                    a.call("activate_lv", vg=VG, name=name, mode="exclusive")
                else:
                    a.call("deactivate_lv", vg=VG, name=name)
            except Exception as e:  # noqa: BLE001 - reported below
                retry_failures.append(f"iteration {i} ({op}): {e}")
            after_retry = (lvm_mode(g1, name), recorded(g1, name))
            if after_retry[0] != after_retry[1]:
                mismatches.append(f"iteration {i} ({op}) after the retry: LVM {after_retry[0]}, "
                                  f"record {after_retry[1]}")
            rows.append(f"{i}: {op}, kill after {delay:.2f} s, call {outcome.get('error') or 'answered'}; "
                        f"LVM/record after the kill {after_kill}, after the retry {after_retry}")
    finally:
        S.cleanup(a, b, name)
    if restarts:
        event("agent restart to READY after SIGKILL (lab1), median", statistics.median(restarts))
    report(f"agent SIGKILL at random points on real LVM (seed {seed}):\n" + "\n".join(rows) +
           f"\nrecords that differ from LVM: {len(mismatches)}; retries that failed: {len(retry_failures)}; "
           f"restart to READY {min(restarts, default=0):.1f}-{max(restarts, default=0):.1f} s")
    assert not mismatches, "\n".join(mismatches)
    assert not retry_failures, "\n".join(retry_failures)
