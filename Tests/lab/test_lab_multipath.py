"""Fault injection on REAL dm-multipath: host 1 loses both paths to the shared disk (issue 15).

Runs only in the multipath lab (AOS_LAB_MPATH=1, `scripts/lab.sh run` does a second, short pass
with it; docs/testing.md "The multipath lab"). There lab1 reaches the shared disk through two
virtio-scsi paths (two controllers, the same file and WWN) under the multipath map
/dev/mapper/mpshared, which multipathd set up with `no_path_retry queue` (queue_if_no_path);
LVM sees the PV only on the map (guest/lab-mpath).

The outage: `lab-mpath fail` takes both SCSI paths offline inside lab1 (sysfs device state): the
SCSI layer rejects their I/O, dm-multipath fails the paths and queues I/O, as on a SAN whose
fabric is gone. Nothing changes for lab2, which sees the disk on its own virtio-blk device.

The zero-stale-write test of Tests/lab/test_lab_fencing.py, on this path: lab1 holds an LV
exclusively and writes numbered blocks into it; both paths fail; sanlock cannot renew, runs
the kill command (`aos-agent fence`), which must switch the map to fail_if_no_path (the queued
write fails instead of landing later) and load error tables into lab1's LVs; lab2 takes the LV
once lab1's lease expired and writes every block; the paths come back (multipathd reinstates
them); no block of lab1 may be on the disk. `aosctl recover` then brings lab1 back, with
queue_if_no_path restored on the map.

test_hazard_without_fencing_multipath (AOS_LAB_MPATH_HAZARD=1; off in CI for time) shows the
test can fail: without the kill command the write queued in multipath lands after the paths
return, over lab2's data.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from dataclasses import dataclass, field

import oslo_messaging
import pytest

import scenarios as S
from conftest import event, report, wait_for_agents
from labvm import VG, Guest, Lab, log
from test_lab_fencing import (
    BLOCKS,
    JOURNAL,
    RECORD,
    FaultLab,
    MiB,
    clock_offset,
    dm_name,
    guest_time,
    recover_with_aosctl,
    tail,
    writer_entries,
    writer_log,
    writer_running,
)

pytestmark = pytest.mark.timeout(900)

MAP = "mpshared"
HEALTHY = "paths=2/2 queue_if_no_path=yes state=active"
TAKEOVER_TIMEOUT = 300


@pytest.fixture(scope="module")
def mfl(lab: Lab, g1: Guest, g2: Guest, hosts: tuple[str, str], rpc, api, amqp_url: str) -> FaultLab:
    if not lab.mpath:
        pytest.skip("not the multipath lab (AOS_LAB_MPATH=1; scripts/lab.sh run does a multipath pass)")
    wait_for_agents(api, hosts)
    return FaultLab(g1, g2, rpc(hosts[0]), rpc(hosts[1]), api, hosts[0], hosts[1], amqp_url)


def mpath_status(g: Guest) -> str:
    return g.run_cmd(["lab-mpath", "status"], timeout=30, check=True).stdout.strip()


def mpath_table(g: Guest) -> str:
    return g.run_cmd(["dmsetup", "table", MAP], timeout=30).stdout.strip()


def diag(fl: FaultLab) -> str:
    parts = []
    for g in (fl.g1, fl.g2):
        parts.append(f"--- {g.name} agent.log (tail) ---\n{tail(g.agent_log(), 40)}")
        parts.append(g.console_tail(15))
    try:
        r = fl.g1.sh(f"echo '# lab-mpath status'; lab-mpath status; echo '# dmsetup table'; dmsetup table; "
                     f"echo '# dmsetup status {MAP}'; dmsetup status {MAP}; "
                     f"echo '# multipathd'; multipathd show paths 2>&1 | head; "
                     f"echo '# writer log (tail)'; lab-blocks writer-log | tail -8; "
                     f"echo '# {RECORD}'; cat {RECORD}; echo; "
                     f"echo '# sanlock log (tail)'; sanlock client log_dump | tail -25", timeout=60)
        parts.append(f"--- lab1 ---\n{r.stdout}{r.stderr}")
    except Exception as e:  # the diagnostics must not hide the failure itself
        parts.append(f"(lab1 diagnostics failed: {e!r})")
    return "\n".join(parts)


def wait_until(fl: FaultLab, cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f}s\n{diag(fl)}", pytrace=False)
        time.sleep(0.5)


@dataclass
class MOutage:
    label: str
    fencing: bool
    prefix: str = field(default_factory=lambda: f"volume-mp{uuid.uuid4().hex[:6]}")
    t_outage: float = 0.0
    outage_guest: float = 0.0
    status_in_outage: str = ""
    t_kill: float | None = None
    t_takeover: float | None = None
    restore_begin_guest: float = 0.0
    restored_guest: float = 0.0
    record: dict | None = None
    map_after_fence: str = ""
    lv_table_after_fence: str = ""
    map_later: list[str] = field(default_factory=list)   # the map's table at each later look in the outage
    writer: list[str] = field(default_factory=list)
    blocks: dict[int, str] = field(default_factory=dict)
    paths_down: bool = False
    needs_recovery: bool = False
    lab2_holds: bool = False

    @property
    def taken(self) -> str:
        return f"{self.prefix}-taken"


def poll_fence(fl: FaultLab, o: MOutage) -> None:
    """The kill command's record (once), then what the map's table says (dmsetup only)."""
    if o.record is None:
        r = fl.g1.run_cmd(["cat", RECORD], timeout=30)
        if r.exit != 0:
            return
        try:
            record = json.loads(r.stdout)
        except ValueError:
            return
        if not isinstance(record, dict) or float(record.get("fenced_at", 0)) <= o.outage_guest:
            return
        o.record = record
        o.t_kill = float(record["fenced_at"]) - clock_offset(fl.g1)
        o.map_after_fence = mpath_table(fl.g1)
        o.lv_table_after_fence = fl.g1.run_cmd(["dmsetup", "table", dm_name(o.taken)], timeout=30).stdout.strip()
        log(f"{o.label}: kill command ran {o.t_kill - o.t_outage:.1f}s after the outage; map: {o.map_after_fence}")
    else:
        o.map_later.append(mpath_table(fl.g1))


def run_outage(fl: FaultLab, o: MOutage) -> None:
    g1, g2, a, b = fl.g1, fl.g2, fl.a, fl.b
    assert mpath_status(g1) == HEALTHY, f"lab1's multipath is not healthy before the test: {mpath_status(g1)}"
    h = a.call("health")
    assert h["ready"] is True and h["vgs"][VG]["lockspace"] == "started", f"lab1 not healthy before the test: {h}"
    g1.run_cmd(["lab-fence", "on" if o.fencing else "off"], timeout=60, check=True)

    a.call("create_lv", vg=VG, name=o.taken, size_bytes=8 * MiB)
    dev = a.call("activate_lv", vg=VG, name=o.taken, mode="exclusive")["device_path"]
    g1.run_cmd(["lab-blocks", "writer-start", dev, str(BLOCKS), "lab1"], timeout=30, check=True)
    wait_until(fl, lambda: sum(1 for e in writer_entries(writer_log(g1)) if e[1] == "ok") >= BLOCKS + 2, 120,
               "lab1's writer did not write every block once")
    assert b.error("activate_lv", vg=VG, name=o.taken, mode="exclusive").exc_type == "LockedByOtherHost"

    # ---- both paths fail ----
    o.needs_recovery = o.paths_down = True
    r = g1.run_cmd(["lab-mpath", "fail"], timeout=60, check=True)
    o.t_outage, o.outage_guest = time.time(), guest_time(r)
    # dm-multipath notices at the next I/O (the writer's): both paths failed, I/O queued.
    o.status_in_outage = wait_until(
        fl, lambda: (s := mpath_status(g1)).startswith("paths=0/2") and s, 60,
        "multipath did not fail both paths")
    log(f"{o.label}: lab1's paths offline: {o.status_in_outage}")

    last: oslo_messaging.RemoteError | None = None
    while o.t_takeover is None:
        if time.time() - o.t_outage > TAKEOVER_TIMEOUT:
            pytest.fail(f"{o.label}: lab2 could not take {o.taken} within {TAKEOVER_TIMEOUT}s "
                        f"(last refusal: {last and last.exc_type}: {last and last.value})\n{diag(fl)}", pytrace=False)
        if o.fencing:
            poll_fence(fl, o)
        try:
            b.call("activate_lv", vg=VG, name=o.taken, mode="exclusive")
            o.t_takeover = time.time()
            o.lab2_holds = True
        except oslo_messaging.RemoteError as e:
            last = e
            time.sleep(0.5)
    log(f"{o.label}: lab2 took {o.taken} {o.t_takeover - o.t_outage:.1f}s after the outage began")
    if o.fencing:
        until = time.time() + 60
        while o.record is None and time.time() < until:
            poll_fence(fl, o)
            time.sleep(0.5)
        poll_fence(fl, o)  # the map once more, at the end of the outage

    r = g2.run_cmd(["lab-blocks", "fill", f"/dev/{VG}/{o.taken}", str(BLOCKS), "lab2"], timeout=120)
    assert r.exit == 0, f"lab2 could not write its blocks: {r}\n{diag(fl)}"

    # ---- the paths return ----
    if not o.fencing:
        g1.run_cmd(["lab-blocks", "writer-stop"], timeout=30, check=True)  # only the queued write is left
    r = g1.run_cmd(["lab-mpath", "restore"], timeout=120, check=True)
    o.restored_guest, o.restore_begin_guest = guest_time(r), guest_time(r, "begin")
    o.paths_down = False
    if o.fencing:
        wait_until(fl, lambda: sum(1 for e in writer_entries(writer_log(g1)) if e[0] > o.restored_guest) >= 3, 60,
                   "lab1's writer made no attempts after the paths returned")
        g1.run_cmd(["lab-blocks", "writer-stop"], timeout=30, check=True)
    wait_until(fl, lambda: not writer_running(g1), 60, "lab1's writer did not stop (a write stuck in queued I/O?)")
    o.writer = writer_log(g1)

    r = g2.run_cmd(["lab-blocks", "read", f"/dev/{VG}/{o.taken}", str(BLOCKS)], timeout=120, check=True)
    for line in r.stdout.splitlines():
        m = re.match(r"^blk=(\d+) ?(.*)$", line)
        if m:
            o.blocks[int(m.group(1))] = m.group(2)
    assert sorted(o.blocks) == list(range(BLOCKS)), f"lab2 read {r.stdout}"


def lab1_blocks(o: MOutage) -> dict[int, str]:
    return {k: v for k, v in o.blocks.items() if v.startswith("lab1 ")}


def blocks_text(o: MOutage) -> str:
    return "\n".join(f"  blk={k}: {v!r}" for k, v in sorted(o.blocks.items()))


def recover_by_hand(fl: FaultLab, o: MOutage) -> None:
    """Whatever state the test left: paths back, queued I/O never lands (fail_if_no_path
    first), LVs down, lockspace dropped and started, a fresh agent."""
    g1 = fl.g1
    steps: list[str] = []

    def sh(cmd: str, timeout: float = 300):
        r = g1.sh(cmd, timeout=timeout)
        steps.append(f"$ {cmd} -> exit {r.exit}\n{r.stdout}{r.stderr}".rstrip())
        return r

    sh(f"dmsetup message {MAP} 0 fail_if_no_path")
    sh("lab-mpath restore")
    sh(f"multipathd restorequeueing map {MAP}")  # the fence may have told multipathd not to queue
    sh(f"dmsetup message {MAP} 0 queue_if_no_path")
    sh("lab-fence off")
    sh("lab-blocks writer-stop")
    wait_until(fl, lambda: not writer_running(g1), 60, "lab1's writer did not stop")
    sh(f"lvchange -an {VG}/{o.taken}")
    sh(f"lvmlockctl --drop {VG}")
    ok = False
    for _ in range(4):
        r = sh(f"vgchange --lock-start {VG}")
        ok = r.exit == 0 and f"s lvm_{VG}:1:" in g1.run_cmd(["sanlock", "client", "status"], timeout=30).stdout
        if ok:
            break
        time.sleep(3)  # retry interval for lvmlockd's background removal, not synchronisation
    sh(f"dmsetup info {dm_name(o.taken)} >/dev/null 2>&1 || exit 0; "
       f"lvchange -an {VG}/{o.taken} || dmsetup remove {dm_name(o.taken)}")
    assert ok, "recovery by hand failed:\n" + "\n".join(steps)
    if o.lab2_holds:
        fl.b.call("deactivate_lv", vg=VG, name=o.taken)
        o.lab2_holds = False
    g1.agent_stop()
    for f in (RECORD, JOURNAL):
        sh(f"[ -e {f} ] && mv {f} {f}.by-hand-$(date +%s) || true")
    g1.agent_start()
    h = fl.a.call("health")
    assert h["vgs"][VG]["lockspace"] == "started", f"after the recovery by hand: {h}\n" + "\n".join(steps)
    o.needs_recovery = False


def finish(fl: FaultLab, o: MOutage) -> None:
    try:
        if o.needs_recovery:
            log(f"{o.label}: recovering lab1 by hand")
            recover_by_hand(fl, o)
    finally:
        if o.paths_down:
            fl.g1.run_cmd(["lab-mpath", "restore"], timeout=120)
        fl.g1.run_cmd(["lab-fence", "off"], timeout=60)
        fl.g1.run_cmd(["lab-blocks", "writer-stop"], timeout=30)
        S.cleanup(fl.a, fl.b, o.prefix)


# ---- the tests ------------------------------------------------------------------------------------

def test_multipath_setup(mfl: FaultLab) -> None:
    """lab1: one map over two SCSI paths with one WWID, queue_if_no_path; the PV only on the map."""
    g1 = mfl.g1
    assert mpath_status(g1) == HEALTHY
    table = mpath_table(g1)
    assert table.split()[2] == "multipath" and "queue_if_no_path" in table.split(), table
    pvs = g1.run_cmd(["pvs", "--noheadings", "-o", "pv_name,vg_name"], timeout=120, check=True).stdout.split()
    assert pvs == [f"/dev/mapper/{MAP}", VG], f"lab1's PVs: {pvs}"
    slaves = g1.sh(f"ls /sys/block/$(basename $(readlink -f /dev/mapper/{MAP}))/slaves", check=True).stdout.split()
    assert len(slaves) == 2 and all(s.startswith("sd") for s in slaves), slaves


def test_multipath_fencing_no_stale_writes(mfl: FaultLab) -> None:
    """Both paths fail with I/O queued in multipath; the kill command switches the map to
    fail_if_no_path and error-tables the LV before lab2 takes over; when the paths return no
    write of lab1 reaches the disk; aosctl recover restores queue_if_no_path."""
    fl = mfl
    o = MOutage("multipath fence", fencing=True)
    try:
        run_outage(fl, o)
        assert o.record is not None, f"the kill command left no record {RECORD}\n{diag(fl)}"
        assert o.t_kill is not None and o.t_takeover is not None
        rec = o.record
        detection = float(rec["fenced_at"]) - o.outage_guest
        takeover = o.t_takeover - o.t_outage
        event(f"{o.label}: paths offline -> kill command (time to fence)", detection)
        event(f"{o.label}: paths offline -> lab2 took the LV (takeover)", takeover)
        requeued = [t for t in o.map_later if "queue_if_no_path" in t.split()]
        from_lab1 = lab1_blocks(o)
        attempts = writer_entries(o.writer)
        late_ok = [e for e in attempts if e[1] == "ok" and e[0] >= o.restore_begin_guest]
        report("\n".join([
            "real dm-multipath, both paths of lab1 offline (Tests/lab/test_lab_multipath.py):",
            f"  paths offline -> kill command (time to fence)   {detection:6.1f} s",
            f"  paths offline -> lab2 took the LV (takeover)     {takeover:6.1f} s",
            f"  fence took                                       {rec.get('duration_ms', -1):6d} ms, "
            f"complete={rec.get('complete')}",
            f"  fence of the paths: {[(p.get('device'), p.get('action'), p.get('detail')) for p in rec['paths']]}",
            f"  lab1 blocks on the disk after the paths returned {len(from_lab1):6d}  (stale writes)",
            f"  lab1 writes ok after the paths returned          {len(late_ok):6d}",
            f"  map during the outage: {o.status_in_outage}; after the fence: "
            f"{' '.join(o.map_after_fence.split()[2:6])}; queueing again later: {len(requeued)}/{len(o.map_later)}",
        ]))
        assert rec["vg"] == VG and rec["complete"] is True, f"record: {json.dumps(rec, indent=1)}"
        paths = {p["device"]: p for p in rec["paths"]}
        assert MAP in paths, f"the fence did not find the multipath map: {json.dumps(rec, indent=1)}"
        assert paths[MAP]["action"] == "fail_if_no_path" and paths[MAP].get("queue_if_no_path") is True, paths[MAP]
        modes = {x.get("name"): x for x in rec["lvs"]}
        assert modes.get(o.taken, {}).get("action") in ("error_table", "already_failing"), rec["lvs"]
        assert o.t_kill < o.t_takeover, (f"kill command at +{o.t_kill - o.t_outage:.1f}s, "
                                         f"after lab2's takeover at +{takeover:.1f}s")
        assert "queue_if_no_path" not in o.map_after_fence.split(), \
            f"the map queues after the fence: {o.map_after_fence}"
        assert o.lv_table_after_fence.split()[2:3] == ["error"], o.lv_table_after_fence
        # multipathd must not have switched queueing back on while the paths were down.
        assert not requeued, f"the map queued again during the outage: {requeued[:3]}"

        assert not from_lab1, f"blocks of lab1 survived lab2's writes:\n{blocks_text(o)}\n" + \
            "writer (tail):\n" + "\n".join(o.writer[-10:])
        expected = {k: f"lab2 seq={k + 1:06d} blk={k}" for k in range(BLOCKS)}
        assert o.blocks == expected, f"lab2's blocks:\n{blocks_text(o)}"
        assert not late_ok, "writes of lab1 succeeded after the paths returned"
        assert [e for e in attempts if e[1] == "fail" and o.outage_guest < e[0] < o.restore_begin_guest], \
            "no write of lab1 failed during the outage (the queued write should have been failed by the fence)"

        doc = recover_with_aosctl(fl, o)
        left = {x["name"] for x in doc["result"]["left_alone"]}
        assert o.taken in left, f"{o.taken} (lab2 holds it) not left alone: {json.dumps(doc, indent=1)}"
        assert mpath_status(fl.g1) == HEALTHY, f"after aosctl recover: {mpath_status(fl.g1)}"
        assert fl.g1.run_cmd(["lvs", "--noheadings", "-o", "lv_active", f"{VG}/{o.taken}"],
                             timeout=120, check=True).stdout.strip() == ""
    finally:
        finish(fl, o)


@pytest.mark.skipif(os.environ.get("AOS_LAB_MPATH_HAZARD") != "1",
                    reason="AOS_LAB_MPATH_HAZARD=1 runs it (~2.5 min: it waits for the lease expiry)")
def test_hazard_without_fencing_multipath(mfl: FaultLab) -> None:
    """No kill command: the write queued in multipath lands when the paths return, over lab2's
    data (what makes the fencing test above able to fail)."""
    fl = mfl
    o = MOutage("multipath no-fence", fencing=False)
    try:
        run_outage(fl, o)
        event(f"{o.label}: paths offline -> lab2 took the LV (takeover)", (o.t_takeover or 0) - o.t_outage)
        from_lab1 = lab1_blocks(o)
        assert from_lab1, ("no block of lab1 survived: the hazard did not show on multipath\n"
                           f"{blocks_text(o)}\nwriter (tail):\n" + "\n".join(o.writer[-10:]))
        late = {(seq, blk) for t, st, seq, blk in writer_entries(o.writer) if st == "ok" and t >= o.restore_begin_guest}
        for blk, header in from_lab1.items():
            m = re.search(r"seq=(\d+)", header)
            assert m and (int(m.group(1)), blk) in late, f"lab1's block {blk} ({header}) is not the late write {late}"
        report(f"real dm-multipath without fencing: lab1's queued write overwrote lab2's data: {from_lab1}")
    finally:
        finish(fl, o)
