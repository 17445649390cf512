"""Adoption of a running AccentOS install on REAL lvm2 + lvmlockd + sanlock (issue 16; the runbook
docs/migration.md): LVs are activated by hand as the AccentOS agent does (`lvchange -aey` /
`-asy`, seed operators' guide), our agent starts with no activation record and records them
with the lock modes sanlock shows; then the adopted activations survive a clean reboot and hand
over for a live migration like the agent's own.

Also records what lvm2 2.03.16 reports for those activations (lvs fields vs sanlock), the
finding docs/agent.md ("Adoption") states.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

import scenarios as S
from conftest import report
from labvm import VG, Guest

pytestmark = pytest.mark.timeout(1200)

MiB = 1 << 20
STATE = "/var/lib/aos-agent/activations.json"
AGENT = "/mnt/host/aos-agent"


def adopt(g: Guest, *args: str) -> tuple[int, dict[str, Any], str]:
    """`aos-agent adopt --json ARGS` in the guest: (exit status, parsed stdout, stderr)."""
    r = g.sh(f"{AGENT} adopt --json --config /mnt/host/$(hostname)/aos.conf {' '.join(args)}", timeout=120)
    return r.exit, json.loads(r.stdout) if r.stdout.strip() else {}, r.stderr


def findings(doc: dict[str, Any], names: set[str]) -> dict[str, tuple[str, str | None]]:
    return {f["name"]: (f["action"], f["mode"]) for f in doc.get("findings", []) if f["name"] in names}


def active_modes(client: Any) -> dict[str, str]:
    return {x["name"]: x["mode"] for x in client.call("health")["active_lvs"]}


def lvs_fields(g: Guest, names: list[str]) -> dict[str, dict[str, str]]:
    fields = "lv_name,lv_uuid,lv_active,lv_active_locally,lv_active_exclusively,lv_active_remotely,lv_lockargs"
    r = g.run_cmd(["lvs", "--reportformat", "json", "-o", fields] + [f"{VG}/{n}" for n in names], check=True)
    return {x["lv_name"]: x for x in json.loads(r.stdout)["report"][0]["lv"]}


def sanlock_modes(g: Guest, uuids: dict[str, str]) -> dict[str, str]:
    """name -> 'SH' or the lease version, from `sanlock client status` (r lines, by LV UUID)."""
    out: dict[str, str] = {}
    for line in g.run_cmd(["sanlock", "client", "status"], check=True).stdout.splitlines():
        if line.startswith("r "):
            spec = line.split()[1].split(":")
            for name, uuid in uuids.items():
                if spec[1] == uuid:
                    out[name] = spec[-1]
    return out


def wait_for_map(api: Any, name: str, want: dict[str, str], timeout: float = 60) -> dict[str, str]:
    """The controller's view of where `name` is active, once it equals `want` (announcements)."""
    deadline = time.monotonic() + timeout
    while True:
        v = api.call({}, "get_volume", name=name)
        got = {a["host"]: a["mode"] for a in v.get("active_on", [])}
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(1)


def test_adopt_hand_activated_lvs_then_reboot_and_migrate(g1: Guest, g2: Guest, hosts, rpc, api, lv) -> None:
    from test_lab_agents import _reboot  # the restore tests' reboot helper

    a, b = rpc(hosts[0]), rpc(hosts[1])
    ex, sh = f"{lv}-ex", f"{lv}-sh"
    try:
        for name in (ex, sh):
            a.call("create_lv", vg=VG, name=name, size_bytes=4 * MiB)
        # The switch on lab1: the old agent is stopped with its LVs active; ours has no record.
        g1.agent_stop()
        g1.sh(f"mv {STATE} {STATE}.before-adoption", check=True)
        # As the AccentOS agent activates (seed guide): exclusive for one VM, shared for multi-attach.
        g1.run_cmd(["lvchange", "-aey", f"{VG}/{ex}"], check=True)
        g1.run_cmd(["lvchange", "-asy", f"{VG}/{sh}"], check=True)

        # What lvm2 reports for them on this host, next to sanlock's lock modes (docs/agent.md).
        fields = lvs_fields(g1, [ex, sh])
        modes = sanlock_modes(g1, {n: f["lv_uuid"] for n, f in fields.items()})
        rows = [f"{'LV':4} {'lv_active':10} {'locally':16} {'exclusively':20} {'remotely':9} {'lockargs':18} sanlock"]
        for tag, name in (("ex", ex), ("sh", sh)):
            f = fields[name]
            rows.append(f"{tag:4} {f['lv_active']:10} {f['lv_active_locally']:16} {f['lv_active_exclusively']:20} "
                        f"{f['lv_active_remotely'] or '-':9} {f['lv_lockargs']:18} {modes.get(name)}")
        report("lvm2 on lab1 after lvchange -aey (ex) / -asy (sh):\n" + "\n".join(rows))
        assert modes[sh] == "SH" and modes[ex].isdigit(), modes
        assert {fields[n]["lv_active_locally"] for n in (ex, sh)} == {"active locally"}, fields

        # Dry run: says what it would record, writes nothing.
        status, doc, err = adopt(g1, "--dry-run")
        assert status == 0, (status, doc, err)
        assert findings(doc, {ex, sh}) == {ex: ("adopt", "exclusive"), sh: ("adopt", "shared")}, doc
        assert doc["dry_run"] is True and doc["recorded"] == 0
        assert g1.run_cmd(["test", "-e", STATE]).exit == 1

        # First start of our agent: it records both, in the modes of their locks, and announces them.
        g1.agent_start()
        assert active_modes(a) == {ex: "exclusive", sh: "shared"}
        h = a.call("health")
        assert h["ready"] is True and not [p for p in h.get("state_problems") or [] if lv in p], h
        log = g1.agent_log().split("==== lab-agent start")[-1]
        assert log.count("adopted an activation found at the first start") >= 2, log[-3000:]
        locks = {(lk["name"], lk["mode"]) for lk in a.call("lock_status")["locks"]}
        assert {(ex, "exclusive"), (sh, "shared")} <= locks, locks
        assert wait_for_map(api, ex, {hosts[0]: "exclusive"}) == {hosts[0]: "exclusive"}
        assert wait_for_map(api, sh, {hosts[0]: "shared"}) == {hosts[0]: "shared"}

        # lab2 had run our agent before (it has a record): an LV activated there by hand is only
        # reported at its start; `aos-agent adopt` (agent stopped) records it.
        g2.agent_stop()
        g2.run_cmd(["lvchange", "-asy", f"{VG}/{sh}"], check=True)
        g2.agent_start()
        problems = b.call("health").get("state_problems") or []
        assert any(f"{VG}/{sh} is active on this host (shared lock)" in p for p in problems), problems
        status, doc, err = adopt(g2)
        assert status == 1 and "stop it first" in err, (status, doc, err)  # refused while the agent runs
        g2.agent_stop()
        status, doc, err = adopt(g2)
        assert status == 0 and findings(doc, {sh}) == {sh: ("adopt", "shared")} and doc["recorded"] >= 1, (doc, err)
        g2.agent_start()
        assert active_modes(b).get(sh) == "shared"
        assert not [p for p in b.call("health").get("state_problems") or [] if sh in p]
        both = {hosts[0]: "shared", hosts[1]: "shared"}
        assert wait_for_map(api, sh, both) == both
        b.call("deactivate_lv", vg=VG, name=sh)

        # Restore after a reboot: the adopted activations come back, in their modes.
        _reboot(g1, "clean")
        h = a.call("health")
        assert h["ready"] is True and h["restore_failures"] == [], h
        assert active_modes(a) == {ex: "exclusive", sh: "shared"}
        locks = {(lk["name"], lk["mode"]) for lk in a.call("lock_status")["locks"]}
        assert {(ex, "exclusive"), (sh, "shared")} <= locks, locks
        assert b.error("activate_lv", vg=VG, name=ex, mode="exclusive").exc_type == "LockedByOtherHost"

        # Live migration lab1 -> lab2 of the adopted exclusive volume: shared on both, then exclusive on lab2.
        assert a.call("activate_lv", vg=VG, name=ex, mode="shared")["changed"] is True
        assert b.call("activate_lv", vg=VG, name=ex, mode="shared")["changed"] is True
        a.call("deactivate_lv", vg=VG, name=ex)
        assert b.call("activate_lv", vg=VG, name=ex, mode="exclusive")["changed"] is True
        after = sanlock_modes(g2, {ex: fields[ex]["lv_uuid"]})
        assert after[ex].isdigit(), after
        assert ex not in active_modes(a) and active_modes(b)[ex] == "exclusive"
        assert wait_for_map(api, ex, {hosts[1]: "exclusive"}) == {hosts[1]: "exclusive"}
    finally:
        for g in (g1, g2):
            if g.sh("lab-agent status").exit != 0:
                g.agent_start()
        g1.sh(f"rm -f {STATE}.before-adoption")
        S.cleanup(a, b, lv)
