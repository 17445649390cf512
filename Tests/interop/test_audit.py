"""`aosctl audit` through the real broker (issue 16): the real controller and two simulated
agents on one VG. Drift is made by hand in the simulator's state file (the shared VG: an LV
"activated by hand" on a host, one "deactivated by hand", an exclusive next to a shared
activation, a foreign LV name) and Cinder's view is a file; the audit's table, JSON and exit
status are checked, then `--fix` shows its plan, refuses without --yes, and repairs the two
safe kinds in the agents' records (and, through their announcements, the controller's map)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import test_authorization as auth
import test_controller_e2e as e2e
from test_controller_e2e import VG, wait_alive, wait_for

cluster = e2e.cluster
ctl = e2e.ctl
# A broker with one user per role and enforced roles (test_authorization's deployment).
secured = auth.secured
dep = auth.dep


def edit_state(tmp: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Changes the simulated cluster's state file as the simulator does: under the flock of
    `cluster.json.lock`, written to a temp file and renamed over it."""
    path = tmp / "cluster.json"
    with open(str(path) + ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        doc = json.loads(path.read_text())
        change(doc)
        tmp_file = Path(f"{path}.tmp.test")
        tmp_file.write_text(json.dumps(doc, sort_keys=True))
        os.replace(tmp_file, path)


def records(tmp: Path, host: str) -> dict[str, str]:
    path = tmp / host / "activations.json"  # written at the agent's first activation
    if not path.exists():
        return {}
    doc = json.loads(path.read_text())
    return {r["name"]: r["mode"] for r in doc.get("activations", [])}


def mapped(ctl, host: str) -> dict[str, str]:
    agent = next(a for a in ctl("list_agents")["agents"] if a["host"] == host)
    return {x["name"]: x["mode"] for x in agent.get("active_lvs", [])}


def audit(cluster, *args: str) -> tuple[int, Any, str]:
    r = cluster.aosctl("audit", "--json", *args)
    return r.returncode, json.loads(r.stdout), r.stderr


def kinds(doc: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(f["kind"], f["name"], ",".join(f["hosts"])) for f in doc["findings"]}


def test_audit_finds_drift_and_fixes_the_safe_kinds(cluster, ctl, tmp_path):
    a, b = cluster.host_a, cluster.host_b
    wait_alive(ctl, a, b)
    names = [f"volume-aud{i}" for i in range(1, 5)]
    for n in names:
        ctl("create_volume", vg=VG, name=n, size_gb=1)
    ctl("activate_volume", vg=VG, name=names[1], host=a)  # aud2: exclusive on a
    ctl("activate_volume", vg=VG, name=names[2], host=a)  # aud3: exclusive on a
    wait_for(lambda: set(mapped(ctl, a)) == {names[1], names[2]}, what="the map of a")
    cinder = tmp_path / "cinder-volumes.json"
    # `openstack volume list -f json` style: aud4 is not Cinder's.
    cinder.write_text(json.dumps([{"ID": n.removeprefix("volume-"), "Name": n} for n in names[:3]]))

    # Clean, but for aud4 which only Cinder's view disowns.
    code, doc, err = audit(cluster)
    assert code == 0 and doc["findings"] == [] and doc["hosts"] == sorted([a, b]), (doc, err)
    code, doc, err = audit(cluster, "--cinder-volumes", str(cinder))
    assert code == 10 and kinds(doc) == {("no_cinder_volume", names[3], "")}, (doc, err)

    # Drift by hand in the shared VG, behind the agents' backs.
    def drift(state: dict[str, Any]) -> None:
        lvs = state["vgs"][VG]["lvs"]
        device = dict(lvs[names[1]]["devices"][a])
        lvs[names[0]]["exclusiveHolder"] = b  # aud1 activated by hand on b
        lvs[names[0]]["devices"] = {b: device}
        del lvs[names[2]]["exclusiveHolder"]  # aud3 deactivated by hand on a
        lvs[names[2]]["devices"] = {}
        lvs[names[1]]["sharedHolders"] = [b]  # aud2 also shared on b, next to a's exclusive
        lvs[names[1]]["devices"][b] = device
        legacy = dict(lvs[names[3]])  # an LV of someone else's naming
        legacy.update(name="lv-legacy", uuid="LEGACY-UUID-0001",
                      leaseOffset=max(x["leaseOffset"] for x in lvs.values()) + (1 << 20))
        lvs["lv-legacy"] = legacy
        orphan = dict(lvs[names[3]])  # a wipe's LV whose agent lost its jobs
        orphan.update(name="aos-wipe-lostjob", uuid="ORPHAN-UUID-0001",
                      leaseOffset=legacy["leaseOffset"] + (1 << 20))
        lvs["aos-wipe-lostjob"] = orphan
    edit_state(tmp_path, drift)

    expected = {
        ("active_without_record", names[0], b),
        ("record_without_activation", names[2], a),
        ("incompatible_activations", names[1], f"{min(a, b)},{max(a, b)}"),
        ("active_without_record", names[1], b),
        ("unexpected_name", "lv-legacy", ""),
        ("no_cinder_volume", names[3], ""),
        ("orphan_job_lv", "aos-wipe-lostjob", ""),
    }
    code, doc, err = audit(cluster, "--cinder-volumes", str(cinder))
    assert code == 10, (code, doc, err)
    assert kinds(doc) == expected, doc
    fixes = {(f["name"], f["fix"]["host"], f["fix"]["action"]) for f in doc["findings"] if f.get("fix")}
    assert fixes == {(names[0], b, "record_activation"), (names[2], a, "forget_record")}, doc

    # The table says the same.
    r = cluster.aosctl("audit", "--cinder-volumes", str(cinder))
    print(r.stdout)
    assert r.returncode == 10 and "KIND" in r.stdout and "7 findings (2 safe to fix with --fix)" in r.stdout, r
    for kind, name, _ in expected:
        assert any(kind in line and name in line for line in r.stdout.splitlines()), (kind, name, r.stdout)

    # --fix without --yes (no terminal): the plan, then a refusal; nothing changes.
    before = (records(tmp_path, a), records(tmp_path, b))
    r = cluster.aosctl("audit", "--fix")
    assert r.returncode == 2 and "Plan (2 fixes" in r.stdout and "--yes" in r.stderr, r
    assert (records(tmp_path, a), records(tmp_path, b)) == before
    # On a terminal it asks; anything but "yes" applies nothing.
    main, term = pty.openpty()
    try:
        os.write(main, b"n\n")
        r = subprocess.run(
            [str(cluster.swift_bin / "aosctl"), "--config", str(cluster.conf), "--url", cluster.amqp_url,
             "audit", "--fix"],
            stdin=term, capture_output=True, text=True, timeout=60)
    finally:
        os.close(main)
        os.close(term)
    assert r.returncode == 1 and "Apply these 2 fixes? [y/N]" in r.stderr and "not applied" in r.stderr, r
    assert (records(tmp_path, a), records(tmp_path, b)) == before

    code, doc, err = audit(cluster, "--fix", "--yes", "--cinder-volumes", str(cinder))
    assert code == 10, (doc, err)  # the unsafe kinds are left
    assert {(x["name"], x["action"], x["result"]["changed"]) for x in doc["applied"]} == {
        (names[0], "record_activation", True), (names[2], "forget_record", True)}, doc
    assert records(tmp_path, b) == {names[0]: "exclusive"}
    assert names[2] not in records(tmp_path, a)
    # The agents announce the change: the controller's map follows.
    wait_for(lambda: mapped(ctl, b) == {names[0]: "exclusive"} and names[2] not in mapped(ctl, a),
             what="the map after the fix")

    code, doc, err = audit(cluster, "--cinder-volumes", str(cinder))
    assert code == 10 and kinds(doc) == expected - {
        ("active_without_record", names[0], b), ("record_without_activation", names[2], a)}, doc
    # LVM was not touched by the fix: aud1 is still active on b, aud3 still inactive.
    lvs = json.loads((tmp_path / "cluster.json").read_text())["vgs"][VG]["lvs"]
    assert lvs[names[0]]["exclusiveHolder"] == b and "exclusiveHolder" not in lvs[names[2]]


def test_audit_direct_and_bad_cinder_file(cluster, ctl, tmp_path):
    a = cluster.host_a
    wait_alive(ctl, a)
    r = cluster.aosctl("audit", "--json", "--direct", a)
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["hosts"] == [a] and doc["findings"] == [], r
    bad = tmp_path / "bad.json"
    bad.write_text('{"volumes": []}')
    r = cluster.aosctl("audit", "--json", "--cinder-volumes", str(bad))
    assert r.returncode == 2 and json.loads(r.stdout)["error"]["code"] == "invalid_argument", r


# ---- who may audit: the admin alone (the broker checks the user; docs/security.md) ----------


def test_the_drift_audit_is_the_admins_alone(dep: auth.Deployment) -> None:
    """With roles enforced: aosctl as aos-admin audits; the driver's signed calls are refused.
    (That the controller may not call them either is the policy's, checked by the Swift tests.)"""
    r = dep.aosctl("audit", "--json", "--vg", VG)  # as aos-admin
    assert r.returncode == 0 and json.loads(r.stdout)["findings"] == [], r
    fix_args = {"vg": VG, "name": "volume-x", "action": "forget_record"}
    for method, args in (("audit_report", {}), ("audit_fix", fix_args)):
        def call(method: str = method, args: dict[str, Any] = args) -> Any:
            return dep.oslo_call("aos-admin", "aos-agent", method, server=dep.host_a, signer=dep.driver_signer, **args)
        e = auth.refused(call)
        assert method in e.value and "driver" in e.value, e.value
