"""Preflight (issue 16): `aos-agent check` on the real lab hosts, and on deliberately wrong ones.

The lab hosts are prepared as the seed says, except that sanlock runs without a watchdog
(`-w 0`, no wdmd) and the shared disk is a plain virtio disk (no multipath, no iSCSI): they
must give no FAIL (WARN for multipath and watchdog is expected). Then one host is broken on
purpose, each time in a way that leaves the running lab untouched or is restored at once:

- `use_lvmlockd = 0` in a COPY of /etc/lvm read through `--lvm-dir` (and through
  LVM_SYSTEM_DIR, as the agent's start sees it: `aos-agent serve` refuses to start);
- `--host-id` that is not the host's (the agent's expected host_id differs from lvmlocal.conf);
- lvmlocal.conf's host_id edited in place while the lockspace runs with the old one
  (restored in a finally block).

Each asserts the exact FAIL item (id, finding, evidence). Reads only; no LV is touched.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest

from conftest import report
from labvm import VG, Guest

pytestmark = pytest.mark.timeout(600)

AGENT = "/mnt/host/aos-agent"
CONF = "/mnt/host/$(hostname)/aos.conf"     # written by labvm.write_agent_config


def check(g: Guest, *args: str, env: str = "") -> tuple[int | None, dict[str, Any], str]:
    """`aos-agent check --json ARGS` in the guest: (exit status, the report, stderr)."""
    r = g.sh(f"{env} {AGENT} check --config {CONF} --json {' '.join(shlex.quote(a) for a in args)}", timeout=120)
    try:
        data = json.loads(r.stdout)
    except ValueError:
        raise AssertionError(f"{g.name}: check printed no JSON on stdout: {r}") from None
    return r.exit, data, r.stderr


def item(data: dict[str, Any], ident: str) -> dict[str, Any]:
    found = [i for i in data["items"] if i["id"] == ident]
    assert found, f"no item {ident} in {data}"
    return found[0]


def host_id_of(g: Guest) -> int:
    r = g.sh("sed -n 's/^[[:space:]]*host_id[[:space:]]*=[[:space:]]*\\([0-9]*\\).*/\\1/p' /etc/lvm/lvmlocal.conf",
             check=True)
    return int(r.stdout.split()[0])


def test_real_hosts_pass(g1: Guest, g2: Guest) -> None:
    for g in (g1, g2):
        table = g.sh(f"{AGENT} check --config {CONF}", timeout=120)
        report(f"aos-agent check on {g.name} (exit {table.exit}):\n{table.stdout}")
        status, data, _ = check(g)
        assert status == 0, data
        assert data["status"] in ("PASS", "WARN"), data
        fails = [i for i in data["items"] if i["status"] == "FAIL"]
        assert not fails, fails
        for ident in ("lvm_conf", "use_lvmlockd", "host_id", "lvmlockd", "sanlock", "pvs"):
            assert item(data, ident)["status"] == "PASS", item(data, ident)
        assert item(data, "host_id")["finding"] == f"host_id = {host_id_of(g)}"
        assert item(data, "pvs")["finding"].startswith(f"VG {VG}: PV /dev/"), item(data, "pvs")
        # The lab has no watchdog daemon (sanlock -w 0): a WARN, never a FAIL.
        assert item(data, "watchdog")["status"] == "WARN"


def test_use_lvmlockd_off_fails(g2: Guest) -> None:
    copy = "/tmp/preflight-lvm"
    g2.sh(f"rm -rf {copy} && mkdir {copy} && cp /etc/lvm/lvm.conf /etc/lvm/lvmlocal.conf {copy}/ && "
          f"sed -i -E 's/^(\\s*)use_lvmlockd = 1/\\1use_lvmlockd = 0/' {copy}/lvm.conf && "
          f"grep -n '^\\s*use_lvmlockd = 0' {copy}/lvm.conf", check=True)
    line = g2.sh(f"grep -n '^\\s*use_lvmlockd = 0' {copy}/lvm.conf", check=True).stdout.split(":")[0]
    try:
        status, data, _ = check(g2, "--lvm-dir", copy)
        assert status == 1 and data["status"] == "FAIL", data
        it = item(data, "use_lvmlockd")
        assert it["status"] == "FAIL" and it["blocking"] is True, it
        assert it["finding"] == "use_lvmlockd is 0, not 1: LVM ignores lvmlockd, two hosts can activate one LV"
        assert it["evidence"] == f"{copy}/lvm.conf:{line}: use_lvmlockd = 0"
        assert it["fix"] == f"set `use_lvmlockd = 1` in the global {{ }} section of {copy}/lvm.conf"
        # The agent's start sees LVM's directory through LVM_SYSTEM_DIR: it refuses to serve
        # (before any broker connection; `timeout` bounds a wrong pass).
        r = g2.sh(f"LVM_SYSTEM_DIR={copy} timeout 60 {AGENT} serve --config {CONF} "
                  "--set agent.state_dir=/tmp/preflight-state", timeout=120)
        assert r.exit == 1, r
        assert "preflight check failed; not serving" in r.stderr and "FAIL    use_lvmlockd" in r.stderr, r.stderr
        assert "READY" not in r.stdout
    finally:
        g2.sh(f"rm -rf {copy} /tmp/preflight-state")


def test_host_id_mismatch_fails(g2: Guest) -> None:
    own = host_id_of(g2)
    other = own + 100
    status, data, _ = check(g2, "--host-id", str(other))
    assert status == 1, data
    it = item(data, "host_id")
    assert it["status"] == "FAIL" and it["blocking"] is True, it
    assert it["finding"] == f"host_id = {own}, but the agent was given --host-id {other}"


def test_lvmlocal_changed_under_a_running_lockspace_fails(g2: Guest) -> None:
    own = host_id_of(g2)
    other = own + 100
    g2.sh("cp -p /etc/lvm/lvmlocal.conf /tmp/lvmlocal.conf.preflight", check=True)
    try:
        g2.sh(f"sed -i -E 's/^(\\s*host_id\\s*=\\s*){own}\\b/\\1{other}/' /etc/lvm/lvmlocal.conf", check=True)
        assert host_id_of(g2) == other
        status, data, _ = check(g2)
        assert status == 1, data
        it = item(data, "host_id")
        assert it["status"] == "FAIL" and it["blocking"] is True, it
        assert it["finding"] == (f"host_id = {other} in the file, but the lockspace of {VG} runs as host_id {own} "
                                 "(changed since it started)"), it
        assert f"$ sanlock client status: s lvm_{VG}:{own}:" in it["evidence"], it
    finally:
        g2.sh("cp -p /tmp/lvmlocal.conf.preflight /etc/lvm/lvmlocal.conf && rm -f /tmp/lvmlocal.conf.preflight",
              check=True)
    assert host_id_of(g2) == own
    status, data, _ = check(g2)
    assert status == 0 and item(data, "host_id")["status"] == "PASS", data
