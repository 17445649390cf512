"""Agent jobs (docs/agent.md "Jobs", issue 13) on REAL lvm2 + lvmlockd + sanlock: the wipe that
follows `delete_lv`, `copy_lv`, a wipe that survives a kill of the agent, and what the jobs
cost next to plain `dd` in the same guest.

How the data is proven gone: the shared disk is one raw file on the host (RUN/shared.img) that
both guests see as the PV (lab1 through a linear device-mapper device at offset 0, lab2
directly), and qemu writes through the host's page cache (cache=writeback). So the host can read
an LV's bytes straight from the file: `lvs --segments -o seg_pe_ranges` gives the LV's physical
extents, `pvs -o pe_start` where extent 0 starts. Before the delete the test reads those bytes
and finds its pattern there (which proves the offsets); after the wipe job it reads the same
bytes and finds only zeros. LVM never moves an LV's extents on lvrename or lvremove, and nothing
else allocates in the VG while a test runs, so those bytes are exactly what the deleted volume
held.

Test data comes from the host too (a file in the 9p share, written into the LV with `dd
oflag=direct` in the guest): no checksum of the source has to be computed under TCG emulation,
where sha256sum reads ~15-25 MB/s.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import oslo_messaging
import pytest

import scenarios as S
from conftest import event, report, rpc_host
from labvm import VG, Guest, Lab

pytestmark = pytest.mark.timeout(900)

MiB = 1 << 20
FINISHED = {"succeeded", "failed", "cancelled"}
# AOS_LAB_JOBS_BENCH_MB: size of the LV the throughput test copies and wipes (0: skip the test).
BENCH_MB = int(os.environ.get("AOS_LAB_JOBS_BENCH_MB", "1024"))


# ---- helpers -------------------------------------------------------------------------------------

def pattern(tag: str, size: int) -> bytes:
    """`size` bytes, every 4 KiB block naming the test and its own number, no zero byte in it."""
    out = bytearray()
    for i in range(size // 4096):
        out += (f"aos-lab {tag} block {i:08d} | ".encode() * 100)[:4096]
    return bytes(out)


def fill_from_host(g: Guest, lv: str, data: bytes | Path, offset: int = 0) -> None:
    """Writes `data` (bytes, or a file already in g's 9p share) into the LV (active on g) at
    `offset` (a multiple of 4 MiB) with direct I/O."""
    if isinstance(data, Path):
        path, remove = data, False
        assert path.parent == g.share, f"{path} is not in {g.share}"
    else:
        path, remove = g.share / f"fill-{lv}.bin", True
        path.write_bytes(data)
    try:
        g.run_cmd(["dd", f"if=/mnt/host/{g.name}/{path.name}", f"of=/dev/{VG}/{lv}", "bs=4M",
                   f"seek={offset // (4 * MiB)}", "iflag=fullblock", "oflag=direct", "conv=notrunc,fsync",
                   "status=none"], timeout=600, check=True)
    finally:
        if remove:
            path.unlink(missing_ok=True)


def extent_ranges(g: Guest, lv: str) -> list[tuple[int, int]]:
    """(offset, length) in bytes on the shared disk of each of the LV's segments, in LV order."""
    r = g.run_cmd(["lvs", "--segments", "--reportformat", "json", "--units", "b", "--nosuffix",
                   "-o", "seg_pe_ranges,seg_start_pe,vg_extent_size", f"{VG}/{lv}"], timeout=60, check=True)
    rows = json.loads(r.stdout)["report"][0]["seg"]
    p = g.run_cmd(["pvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o", "pv_name,pe_start,vg_name"],
                  timeout=60, check=True)
    pvs = [row for row in json.loads(p.stdout)["report"][0]["pv"] if row["vg_name"] == VG]
    assert len(pvs) == 1, f"the lab VG has one PV: {pvs}"
    pe_start = int(pvs[0]["pe_start"])
    ranges = []
    for row in sorted(rows, key=lambda x: int(x["seg_start_pe"])):
        extent = int(row["vg_extent_size"])
        for part in row["seg_pe_ranges"].split():  # "/dev/vda:64-79" (lab1: /dev/mapper/sanlock:…)
            first, last = (int(x) for x in part.rpartition(":")[2].split("-"))
            ranges.append((pe_start + first * extent, (last - first + 1) * extent))
    return ranges


def read_shared(lab: Lab, ranges: list[tuple[int, int]]) -> bytes:
    """The bytes of those ranges as the host sees the shared disk's image file."""
    out = bytearray()
    with open(lab.run / "shared.img", "rb") as f:
        for offset, length in ranges:
            f.seek(offset)
            chunk = f.read(length)
            out += chunk + bytes(length - len(chunk))  # past the end of a sparse file: zeros
    return bytes(out)


def zero_report(data: bytes, needle: bytes) -> str:
    """For a failure message: how much of `data` is not zero and whether the pattern is still there."""
    nonzero = len(data) - data.count(0)
    first = next((i for i, b in enumerate(data) if b), None)
    return (f"{nonzero} of {len(data)} bytes not zero (first at {first}); pattern "
            f"{'STILL PRESENT' if needle in data else 'absent'}")


def lv_names(client: Any) -> set[str]:
    return {x["name"] for x in client.call("list_lvs", vg=VG)["lvs"]}


def guest_lv_names(g: Guest) -> set[str]:
    r = g.run_cmd(["lvs", "--noheadings", "-o", "lv_name", VG], timeout=60, check=True)
    return {line.strip() for line in r.stdout.splitlines() if line.strip()}


def snake(exc_type: str) -> str:
    """oslo's exception class (LockedByOtherHost) -> the wire code (locked_by_other_host)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", exc_type).lower()


def wait_job(client: Any, job_id: str, timeout: float = 300, final_failure_ok: bool = False) -> dict:
    """Polls job_info until the job is finished. A failed job that will be retried
    (`next_attempt_at`) fails the test at once, with its error, unless final_failure_ok and no
    retry is due."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.call("job_info", id=job_id)
        if job["state"] == "failed":
            if final_failure_ok and job.get("next_attempt_at") is None:
                return job
            raise AssertionError(f"job {job_id} failed: {job}")
        if job["state"] in FINISHED:
            return job
        assert time.monotonic() < deadline, f"job {job_id} not finished within {timeout} s: {job}"
        time.sleep(0.3)


def job_seconds(job: dict) -> float:
    return float(job["finished_at"]) - float(job["started_at"] or job["created_at"])


def call_or_job(client: Any, method: str, **kwargs: Any) -> tuple[str, str | None, Any]:
    """A call whose refusal the agent may report either as the call's error or as its job's
    failure: ("call", code, message) or ("job", code or None, finished job)."""
    try:
        r = client.call(method, **kwargs)
    except oslo_messaging.RemoteError as e:
        return "call", snake(e.exc_type), str(e.value)
    job = wait_job(client, r["job"]["id"], timeout=120, final_failure_ok=True)
    return "job", (job.get("error") or {}).get("code"), job


def guest_seconds(g: Guest, argv: list[str], timeout: float = 600) -> float:
    """Runs argv in the guest and returns how long it took by the guest's clock (without the
    guest-agent round trip)."""
    script = 's=$(date +%s.%N); "$@"; rc=$?; e=$(date +%s.%N); echo "took $s $e"; exit $rc'
    r = g.run_cmd(["/bin/sh", "-c", script, "sh", *argv], timeout=timeout, check=True)
    _, s, e = r.stdout.strip().splitlines()[-1].split()
    return float(e) - float(s)


def chunk_commands(g: Guest, hidden_lv: str) -> tuple[int, float]:
    """(count, seconds) of the job's I/O commands (`ionice … dd|blkdiscard` on its hidden LV)
    as the agent logged them (debug: `argv=… duration_ms=N`): the data part of a job's time,
    apart from its LVM commands."""
    n, ms = 0, 0
    for line in g.agent_log().splitlines():
        if "argv=ionice" in line and f"/{hidden_lv} " in line + " ":
            m = re.search(r"duration_ms=(\d+)", line)
            if m:
                n, ms = n + 1, ms + int(m.group(1))
    return n, ms / 1000


@contextmanager
def agent_options(g: Guest, amqp_url: str, extra: str) -> Iterator[str]:
    """Runs the guest's agent with extra [agent] options; the original aos.conf (and an agent
    started from it) afterwards. Yields the original config text."""
    conf = g.share / "aos.conf"
    original = conf.read_text()
    try:
        g.write_agent_config(amqp_url, rpc_host(g), extra=extra)
        g.agent_stop()
        g.agent_start()
        yield original
    finally:
        if conf.read_text() != original:
            conf.write_text(original)
            g.agent_stop()
            g.agent_start()
        elif g.sh("lab-agent status").exit != 0:
            g.agent_start()


# ---- 1 + 4: the wipe after delete_lv --------------------------------------------------------------

def test_delete_returns_at_once_and_the_wipe_zeroes_the_extents(lab: Lab, g1: Guest, g2: Guest, hosts,
                                                                 rpc, lv) -> None:
    """Pattern written on A, LV deleted through B: the call returns with the job while the LV
    is only renamed; the job zeroes every extent the volume had and removes the LV."""
    a, b = rpc(hosts[0]), rpc(hosts[1])
    size = 64 * MiB
    data = pattern(f"wipe {lv}", size)
    try:
        a.call("create_lv", vg=VG, name=lv, size_bytes=size)
        a.call("activate_lv", vg=VG, name=lv, mode="exclusive")
        fill_from_host(g1, lv, data)
        ranges = extent_ranges(g1, lv)
        assert sum(n for _, n in ranges) == size, ranges
        assert read_shared(lab, ranges) == data, "the LV's extents in shared.img do not hold what was written"
        a.call("deactivate_lv", vg=VG, name=lv)

        t0 = time.monotonic()
        r = b.call("delete_lv", vg=VG, name=lv, volume_clear="zero", volume_clear_size_mb=0)
        call_s = time.monotonic() - t0
        job = r["job"]
        assert r["changed"] is True and job is not None and job["id"], r
        assert job["kind"] == "wipe" and job["source"] == lv and job["target"] == f"aos-wipe-{job['id']}", job
        assert job["host"] == hosts[1] and job["vg"] == VG and job["total_bytes"] == size, job
        # The call returned before the wipe was done (not a timed assertion: the job's own state).
        assert job["state"] in ("queued", "running"), job
        # The volume is gone under its name at once, on every host.
        assert lv not in lv_names(a) and lv not in lv_names(b)
        assert a.error("lv_info", vg=VG, name=lv).exc_type == "NotFound"
        # The hidden LV may only be gone once the job is done.
        hidden_seen = job["target"] in guest_lv_names(g1)
        if not hidden_seen:
            assert b.call("job_info", id=job["id"])["state"] == "succeeded", "hidden LV gone before the job ended"

        done = wait_job(b, job["id"])
        assert done["state"] == "succeeded" and done["done_bytes"] == size and done["error"] is None, done
        assert done["method"] in ("zeroout", "write_zeros"), done
        assert job["target"] not in guest_lv_names(g1) | guest_lv_names(g2), "the wipe job left its LV"
        after = read_shared(lab, ranges)
        assert after == bytes(size), "wiped extents: " + zero_report(after, f"aos-lab wipe {lv}".encode())
        listed = {j["id"]: j for j in b.call("list_jobs")["jobs"]}
        assert listed.get(job["id"], {}).get("state") == "succeeded", listed.get(job["id"])

        event(f"delete_lv call with a {size // MiB} MiB wipe (returns with the job)", call_s)
        event(f"wipe job {size // MiB} MiB, method {done['method']} (started -> finished)", job_seconds(done))
        print(f"delete_lv returned in {call_s:.2f} s with the job {job['state']}; the wipe took "
              f"{job_seconds(done):.2f} s (created -> finished {done['finished_at'] - done['created_at']:.2f} s), "
              f"method {done['method']}, hidden LV seen at return: {hidden_seen}")
    finally:
        S.cleanup(a, b, lv)


# ---- 2: copy an LV another host holds exclusively -------------------------------------------------

def test_copy_on_the_exclusive_holder(lab: Lab, g1: Guest, g2: Guest, hosts, rpc, lv) -> None:
    a, b = rpc(hosts[0]), rpc(hosts[1])
    src, dst = f"{lv}-src", f"{lv}-dst"
    size = 32 * MiB
    data = pattern(f"copy {lv}", size)
    want = hashlib.sha256(data).hexdigest()
    try:
        a.call("create_lv", vg=VG, name=src, size_bytes=size)
        b.call("activate_lv", vg=VG, name=src, mode="exclusive")
        fill_from_host(g2, src, data)

        # Not on the holder: the source cannot be read here (lvmlockd refuses the shared lock).
        how, code, detail = call_or_job(a, "copy_lv", vg=VG, source=src, target=dst)
        print(f"copy_lv on the non-holder: refused by the {how}: {code}")
        assert code == "locked_by_other_host", (how, code, detail)
        assert dst not in lv_names(a)
        assert not [n for n in guest_lv_names(g1) if n.startswith("aos-copy-")], "a failed copy left its LV"

        # On the holder.
        t0 = time.monotonic()
        r = b.call("copy_lv", vg=VG, source=src, target=dst, verify=True)
        call_s = time.monotonic() - t0
        job = r["job"]
        assert r["changed"] is True and r["host"] == hosts[1], r
        assert job["kind"] == "copy" and job["source"] == src and job["target"] == dst and job["verify"] is True, job
        assert job["state"] in ("queued", "running"), job
        done = wait_job(b, job["id"])
        assert done["state"] == "succeeded" and done["done_bytes"] == done["total_bytes"] == size, done
        assert done["checksum"] == want, (done["checksum"], want)
        lvs = {x["name"]: x for x in b.call("list_lvs", vg=VG)["lvs"]}
        assert lvs[dst]["size_bytes"] == size and lvs[dst]["active"] is False, lvs[dst]
        assert not [n for n in lvs if n.startswith("aos-copy-")], sorted(lvs)
        # The holder keeps its source as it was (a VM may be using it).
        info = b.call("lv_info", vg=VG, name=src)
        assert info["active"] is True and info["mode"] == "exclusive", info

        # Read the copy on the other host, through LVM.
        a.call("activate_lv", vg=VG, name=dst, mode="shared")
        got = g1.run_cmd(["sha256sum", f"/dev/{VG}/{dst}"], timeout=300, check=True).stdout.split()[0]
        assert got == want, "the copy read on the other host differs from the source"

        # The same copy again is that job; another copy onto an existing LV is refused.
        again = b.call("copy_lv", vg=VG, source=src, target=dst, verify=True)
        assert again["changed"] is False and again["job"]["id"] == job["id"], again
        how, code, _ = call_or_job(b, "copy_lv", vg=VG, source=dst, target=src)
        assert code == "already_exists", (how, code)

        event(f"copy_lv call ({size // MiB} MiB, verify)", call_s)
        event(f"copy job {size // MiB} MiB with verify (started -> finished)", job_seconds(done))
    finally:
        S.cleanup(a, b, lv)


# ---- 3: the agent dies in the middle of a wipe -----------------------------------------------------

@pytest.mark.skipif(os.environ.get("AOS_LAB_JOBS_RESTART", "1") == "0", reason="AOS_LAB_JOBS_RESTART=0")
def test_wipe_resumes_after_the_agent_is_killed(lab: Lab, g1: Guest, g2: Guest, hosts, rpc, amqp_url: str,
                                                lv) -> None:
    """volume_copy_bps_limit slows the wipe down; the agent's whole process group is killed
    (as systemd's KillMode=control-group would) while the wipe is part done; the agent started
    again (without the limit) resumes the job from jobs.json, finishes it and removes the LV."""
    a, b = rpc(hosts[0]), rpc(hosts[1])
    size = 512 * MiB
    limit = 64 * MiB
    head, tail = pattern(f"restart-head {lv}", 4 * MiB), pattern(f"restart-tail {lv}", 4 * MiB)
    try:
        with agent_options(g1, amqp_url, f"volume_copy_bps_limit = {limit}\n") as original_conf:
            a.call("create_lv", vg=VG, name=lv, size_bytes=size)
            a.call("activate_lv", vg=VG, name=lv, mode="exclusive")
            fill_from_host(g1, lv, head)
            fill_from_host(g1, lv, tail, offset=size - len(tail))
            ranges = extent_ranges(g1, lv)
            before = read_shared(lab, ranges)
            assert before[:len(head)] == head and before[-len(tail):] == tail
            a.call("deactivate_lv", vg=VG, name=lv)

            job = a.call("delete_lv", vg=VG, name=lv, volume_clear="zero")["job"]
            assert job is not None and job["state"] in ("queued", "running"), job
            deadline = time.monotonic() + 120
            while True:
                cur = a.call("job_info", id=job["id"])
                if 0 < cur["done_bytes"] < size:
                    break
                assert cur["state"] not in FINISHED, \
                    f"the wipe finished before it could be interrupted (limit {limit} B/s ignored?): {cur}"
                assert time.monotonic() < deadline, f"no progress within 120 s: {cur}"
                time.sleep(0.2)
            # Capacity while the wipe runs: the hidden LV counts as wiping, not free.
            vg = a.call("vg_info", vg=VG)
            assert vg["wiping_lv_count"] >= 1 and vg["wiping_bytes"] >= size, vg
            # Job LVs are not volumes: another host cannot touch it.
            assert b.error("activate_lv", vg=VG, name=job["target"], mode="shared").exc_type == "LvNotManaged"

            # Kill the agent and everything it started (its process group; lab-agent starts it with setsid).
            g1.sh("pid=$(cat /run/aos-agent.pid) && kill -9 -\"$pid\"; "
                  "while kill -0 \"$pid\" 2>/dev/null; do sleep 0.1; done; rm -f /run/aos-agent.pid", check=True)
            recorded = g1.sh("cat /var/lib/aos-agent/jobs.json").stdout
            left = g1.sh("ps -eo pid,pgid,args | grep -E '[ /](dd|blkdiscard) ' || true").stdout
            print(f"killed at done_bytes={cur['done_bytes']} of {size}; processes left: {left.strip() or 'none'}")
            print(f"jobs.json after the kill: {recorded[:2000]}")
            g1.share.joinpath("aos.conf").write_text(original_conf)  # resume without the limit
            t0 = time.monotonic()
            event("agent restart to READY (lab1, a wipe to resume)", g1.agent_start())
            done = wait_job(a, job["id"], timeout=300)
            resume_s = time.monotonic() - t0
            assert done["state"] == "succeeded" and done["done_bytes"] == size, done
            names = guest_lv_names(g1)
            assert job["target"] not in names, f"{job['target']} is still there after the job succeeded"
            others = sorted(n for n in names if n.startswith("aos-wipe-"))
            if others:
                print(f"other wipe LVs in the VG (other tests' jobs): {others}")
            after = read_shared(lab, ranges)
            assert after == bytes(size), "wiped extents after the restart: " + zero_report(after, b"aos-lab restart")
            event("wipe resumed after kill -9: restart -> job succeeded", resume_s)
            # Where the new run started (the agent's log): the recorded progress, not 0. The
            # assertion that matters is the one above (every byte is zero); this is information.
            run_log = g1.agent_log().split("==== lab-agent start")[-1]
            offsets = re.findall(rf"--offset (\d+) --length \d+ /dev/{VG}/{re.escape(job['target'])}\b", run_log)
            report(f"wipe of {size // MiB} MiB killed at done_bytes {cur['done_bytes'] // MiB} MiB (job_info); "
                   f"the restarted agent began at {int(offsets[0]) // MiB if offsets else '?'} MiB; "
                   f"attempts {done['attempts']}")
    finally:
        S.cleanup(a, b, lv)


# ---- 5: throughput next to plain dd ---------------------------------------------------------------

@pytest.mark.skipif(BENCH_MB <= 0, reason="AOS_LAB_JOBS_BENCH_MB=0")
def test_copy_and_wipe_throughput(lab: Lab, g1: Guest, hosts, rpc, lv) -> None:
    """copy_lv and the wipe of a BENCH_MB MiB LV against plain dd (64 MiB blocks, direct I/O)
    and blkdiscard --zeroout of the same size in the same guest, in the same run. Numbers are
    printed and written to RUN/jobs-throughput.json, never asserted."""
    a, b = rpc(hosts[0]), rpc(hosts[1])
    size = BENCH_MB * MiB
    src, plain, dst = f"{lv}-src", f"{lv}-plain", f"{lv}-dst"
    fill = g1.share / f"fill-{lv}.bin"
    block = os.urandom(64 * MiB)
    with open(fill, "wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
        f.write(block[: size % len(block)])
    dev = f"/dev/{VG}"
    results: dict[str, Any] = {"size_bytes": size}
    try:
        for name in (src, plain):
            a.call("create_lv", vg=VG, name=name, size_bytes=size)
            a.call("activate_lv", vg=VG, name=name, mode="exclusive")
        fill_from_host(g1, src, fill)
        results["dd_copy_s"] = guest_seconds(g1, ["dd", f"if={dev}/{src}", f"of={dev}/{plain}", "bs=64M",
                                                  "iflag=direct", "oflag=direct", "status=none"])
        results["dd_zero_s"] = guest_seconds(g1, ["dd", "if=/dev/zero", f"of={dev}/{plain}", "bs=64M",
                                                  f"count={size // (64 * MiB)}", "oflag=direct", "status=none"])
        results["blkdiscard_zeroout_s"] = guest_seconds(g1, ["blkdiscard", "--zeroout", f"{dev}/{plain}"])
        a.call("deactivate_lv", vg=VG, name=plain)
        a.call("delete_lv", vg=VG, name=plain, volume_clear="none")

        t0 = time.monotonic()
        job = a.call("copy_lv", vg=VG, source=src, target=dst)["job"]
        results["copy_call_s"] = time.monotonic() - t0
        results["copy_state_at_return"] = job["state"]
        done = wait_job(a, job["id"], timeout=600)
        results["copy_job_s"] = job_seconds(done)
        results["copy_job_total_s"] = float(done["finished_at"]) - float(done["created_at"])
        results["copy_chunks"], results["copy_chunks_s"] = chunk_commands(g1, f"aos-copy-{job['id']}")

        t0 = time.monotonic()
        job = a.call("delete_lv", vg=VG, name=dst, volume_clear="zero")["job"]
        results["delete_call_s"] = time.monotonic() - t0
        results["wipe_state_at_return"] = job["state"]
        assert job["state"] in ("queued", "running"), job
        done = wait_job(a, job["id"], timeout=600)
        results["wipe_job_s"] = job_seconds(done)
        results["wipe_job_total_s"] = float(done["finished_at"]) - float(done["created_at"])
        results["wipe_method"] = done["method"]
        results["wipe_chunks"], results["wipe_chunks_s"] = chunk_commands(g1, job["target"])
    finally:
        fill.unlink(missing_ok=True)
        S.cleanup(a, b, lv)

    mb = size / MiB
    r = results

    def row(label: str, secs: float, note: str = "") -> str:
        speed = f"{mb / secs:7.1f} MiB/s" if secs > 0 else "        n/a"
        return f"  {label:<47} {secs:6.2f} s {speed}  {note}".rstrip()

    lines = [
        f"{BENCH_MB} MiB LV on lab1 (qemu TCG, 1 vCPU, virtio-blk on a raw file, cache=writeback):",
        row("plain dd copy (bs=64M, direct, 1 process)", r["dd_copy_s"]),
        row("copy_lv job, started -> finished", r["copy_job_s"],
            f"{r['copy_job_s'] / r['dd_copy_s']:.1f}x dd; created -> finished {r['copy_job_total_s']:.2f} s, "
            f"call {r['copy_call_s']:.2f} s"),
        row(f"  of which its {r['copy_chunks']} dd chunks", r["copy_chunks_s"],
            f"{r['copy_chunks_s'] / r['dd_copy_s']:.1f}x dd; the rest: LVM (activate, deactivate, rename)"),
        row("plain dd of zeros (bs=64M, direct, 1 process)", r["dd_zero_s"]),
        row("blkdiscard --zeroout (one call)", r["blkdiscard_zeroout_s"]),
        row(f"wipe job ({r['wipe_method']}), started -> finished", r["wipe_job_s"],
            f"{r['wipe_job_s'] / r['dd_zero_s']:.1f}x dd of zeros; delete call {r['delete_call_s']:.2f} s"),
        row(f"  of which its {r['wipe_chunks']} chunk commands", r["wipe_chunks_s"],
            f"{r['wipe_chunks_s'] / max(r['blkdiscard_zeroout_s'], 0.01):.1f}x one blkdiscard call; "
            "the rest: LVM (activate, deactivate, remove)"),
    ]
    text = "\n".join(lines)
    report(text)
    (lab.run / "jobs-throughput.json").write_text(json.dumps(results, indent=1) + "\n")
    for key in ("dd_copy_s", "copy_job_s", "copy_chunks_s", "dd_zero_s", "blkdiscard_zeroout_s", "wipe_job_s",
                "wipe_chunks_s", "delete_call_s", "copy_call_s"):
        event(f"jobs throughput {BENCH_MB} MiB: {key}", results[key])
