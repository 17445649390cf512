"""`aosctl audit` on real lvm2 + lvmlockd + sanlock (issue 16): drift made by hand with
`lvchange` in the guests — an LV activated behind the agent's back on lab2, one deactivated
behind it on lab1 — is found with the lock mode real sanlock reports (the LV lock is named by
the LV's UUID), `--fix --yes` records the first and drops the second's record without touching
LVM, and the next audit is clean for them."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

from conftest import REPO, swift_bin_dir, wait_for_agents
from labvm import LAB_CONTROLLER_TOPIC, VG, Guest


def aosctl(amqp_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(swift_bin_dir() / "aosctl"), "--url", amqp_url, "--set", f"controller.topic={LAB_CONTROLLER_TOPIC}",
         "--timeout", "120", *args],
        capture_output=True, text=True, timeout=300, cwd=REPO)


def ours(doc: dict, names: set[str]) -> set[tuple[str, str, str, str]]:
    """(kind, name, hosts, fix action) of the findings about `names` (other tests' LVs may drift too)."""
    return {(f["kind"], f["name"], ",".join(f["hosts"]), (f.get("fix") or {}).get("action", "-"))
            for f in doc["findings"] if f["name"] in names}


def active_lvs(api, host: str) -> dict[str, str]:
    agent = next(a for a in api.call({}, "list_agents")["agents"] if a["host"] == host)
    return {x["name"]: x["mode"] for x in agent.get("active_lvs", [])}


def test_audit_on_real_lvm(api, amqp_url: str, hosts, g1: Guest, g2: Guest) -> None:
    h1, h2 = hosts
    wait_for_agents(api, hosts)
    tag = uuid.uuid4().hex[:8]
    by_hand, forgotten = f"volume-audh-{tag}", f"volume-audf-{tag}"
    names = {by_hand, forgotten}
    for n in names:
        api.call({}, "create_volume", name=n, size_bytes=16 << 20)
    api.call({}, "activate_volume", name=forgotten, host=h1, mode="exclusive")
    try:
        g2.sh(f"lvchange -aey {VG}/{by_hand}", check=True)  # behind lab2's agent
        g1.sh(f"lvchange -an {VG}/{forgotten}", check=True)  # behind lab1's agent

        t0 = time.monotonic()
        r = aosctl(amqp_url, "audit", "--json", "--vg", VG)
        print(f"aosctl audit on the lab: {time.monotonic() - t0:.2f}s")
        assert r.returncode == 10, r
        doc = json.loads(r.stdout)
        assert ours(doc, names) == {
            ("active_without_record", by_hand, h2, "record_activation"),
            ("record_without_activation", forgotten, h1, "forget_record"),
        }, doc
        fix = next(f["fix"] for f in doc["findings"] if f["name"] == by_hand)
        assert fix["mode"] == "exclusive", fix  # from `sanlock client status`, by the LV's UUID

        r = aosctl(amqp_url, "audit", "--json", "--vg", VG, "--fix", "--yes")
        doc = json.loads(r.stdout)
        applied = {(x["name"], x["action"]): x.get("result") or x.get("error")
                   for x in doc["applied"] if x["name"] in names}
        assert {k: (v or {}).get("changed") for k, v in applied.items()} == {
            (by_hand, "record_activation"): True, (forgotten, "forget_record"): True}, doc
        deadline = time.monotonic() + 30
        while not (active_lvs(api, h2).get(by_hand) == "exclusive" and forgotten not in active_lvs(api, h1)):
            assert time.monotonic() < deadline, "the controller's map did not follow the fix"
            time.sleep(1)  # polling interval, not synchronisation
        r = aosctl(amqp_url, "audit", "--json", "--vg", VG)
        assert ours(json.loads(r.stdout), names) == set(), r.stdout
        # LVM as the operator left it: the fix changed records only.
        assert g2.sh(f"lvs --noheadings -o lv_active {VG}/{by_hand}").stdout.strip() == "active"
        assert g1.sh(f"lvs --noheadings -o lv_active {VG}/{forgotten}").stdout.strip() == ""
    finally:
        api.call({}, "deactivate_volume", name=by_hand, host=h2)
        g2.sh(f"lvchange -an {VG}/{by_hand}")
        for n in names:
            api.call({}, "delete_volume", name=n, volume_clear="none")
