"""Copies of an in-use volume on REAL lvm2 + lvmlockd + sanlock (issue 14; docs/agent.md "Jobs",
docs/cinder.md "Snapshots"): the source is active exclusively on lab1 as for a VM, which keeps
writing it while the copy job runs on lab1. The job reads a short-lived COW snapshot
(`aos-cow-<job>`), so the copy holds the data of its start; the snapshot is gone afterwards, also
after an agent restart in the middle of the copy. Then a clone of the same in-use volume.

Small LVs (64 MiB) and a rate limit of 8 MiB/s make the copy last ~8 s: long enough to write
during it, short for the lab.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest

import scenarios as S
from labvm import VG, Guest, Lab
from test_lab_jobs import agent_options, fill_from_host, guest_lv_names, pattern, wait_job

pytestmark = pytest.mark.timeout(600)

MiB = 1 << 20
SIZE = 64 * MiB
LIMIT = 8 * MiB


def sha(g: Guest, lv: str) -> str:
    return g.run_cmd(["sha256sum", f"/dev/{VG}/{lv}"], timeout=300, check=True).stdout.split()[0]


def cow_names(*guests: Guest) -> set[str]:
    return {n for g in guests for n in guest_lv_names(g) if n.startswith("aos-cow-")}


def wait_for_cow(g: Guest, client: Any, job_id: str) -> bool:
    """True once the job's COW snapshot is there; False if the job finished first (polling the
    guest's lvs, which is the state being waited for, not a timing)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if f"aos-cow-{job_id}" in guest_lv_names(g):
            return True
        if client.call("job_info", id=job_id)["state"] in ("succeeded", "failed", "cancelled"):
            return False
        time.sleep(0.2)
    raise AssertionError(f"job {job_id}: no COW snapshot within 120 s")


def test_copy_of_an_in_use_volume_is_point_in_time(lab: Lab, g1: Guest, g2: Guest, hosts, rpc, lv,
                                                   amqp_url: str) -> None:
    a, b = rpc(hosts[0]), rpc(hosts[1])
    src, snap, clone = f"{lv}-src", f"{lv}-snap", f"{lv}-clone"
    first, second = pattern(f"first {lv}", SIZE), pattern(f"second {lv}", SIZE)
    try:
        a.call("create_lv", vg=VG, name=src, size_bytes=SIZE)
        a.call("activate_lv", vg=VG, name=src, mode="exclusive")
        fill_from_host(g1, src, first)
        with agent_options(g1, amqp_url, f"volume_copy_bps_limit = {LIMIT}\n"):
            t0 = time.monotonic()
            job = a.call("copy_lv", vg=VG, source=src, target=snap, verify=True)["job"]
            assert wait_for_cow(g1, a, job["id"]), "the copy ended before its COW snapshot was seen"
            fill_from_host(g1, src, second)  # the VM writes everything, during the copy
            # The agent restarts in the middle: the job goes on from the same snapshot.
            g1.agent_stop()
            assert f"aos-cow-{job['id']}" in guest_lv_names(g1), "the COW snapshot outlives the agent"
            g1.agent_start()
            done = wait_job(a, job["id"], timeout=300)
            took = time.monotonic() - t0
        assert done["state"] == "succeeded" and done["done_bytes"] == SIZE, done
        assert done["checksum"] == hashlib.sha256(first).hexdigest(), "the copy is the data of its start"
        assert not cow_names(g1, g2), "the COW snapshot is removed"
        info = a.call("lv_info", vg=VG, name=src)
        assert info["active"] is True and info["mode"] == "exclusive", info
        b.call("activate_lv", vg=VG, name=snap, mode="shared")
        assert sha(g2, snap) == hashlib.sha256(first).hexdigest(), "read on the other host"
        b.call("deactivate_lv", vg=VG, name=snap)
        print(f"in-use copy of {SIZE // MiB} MiB at {LIMIT // MiB} MiB/s with an agent restart: {took:.1f} s, "
              f"attempts {done['attempts']}")

        # A clone of the in-use volume now: the data written since.
        cjob = a.call("copy_lv", vg=VG, source=src, target=clone, verify=True)["job"]
        cdone = wait_job(a, cjob["id"], timeout=300)
        assert cdone["state"] == "succeeded" and cdone["checksum"] == hashlib.sha256(second).hexdigest(), cdone
        assert not cow_names(g1, g2)
        log = g1.agent_log()
        assert "copy reads a COW snapshot" in log and "copy goes on from its COW snapshot" in log
    finally:
        for name in cow_names(g1):  # only after a failure: a left snapshot blocks the origin's removal
            g1.run_cmd(["lvremove", "--yes", f"{VG}/{name}"], timeout=120)
        S.cleanup(a, b, lv)


def test_lvmlockd_limits_of_cow_snapshots(g1: Guest, g2: Guest, hosts, rpc, lv) -> None:
    """What docs/cinder.md "Snapshots" says lvmlockd allows, on this lab's lvm2 (the texts are
    printed; the outcomes asserted)."""
    a, b = rpc(hosts[0]), rpc(hosts[1])
    src = f"{lv}-o"
    try:
        a.call("create_lv", vg=VG, name=src, size_bytes=SIZE)

        def lvcreate_s(g: Guest, name: str) -> Any:
            r = g.run_cmd(["lvcreate", "-s", "-L", "16m", "-n", name, f"{VG}/{src}"], timeout=120)
            print(f"{g.name}: lvcreate -s ({name}) -> exit {r.exit}: {r.stderr.strip()}")
            return r

        # Inactive origin: lvmlockd takes its lock for the command; the snapshot is inactive.
        assert lvcreate_s(g1, "aos-cow-lab-inactive").exit == 0, "origin inactive"
        assert "aos-cow-lab-inactive" in guest_lv_names(g1)
        a.call("activate_lv", vg=VG, name=src, mode="exclusive")  # activates the snapshot too
        assert g1.run_cmd(["lvremove", "--yes", f"{VG}/aos-cow-lab-inactive"], timeout=120).exit == 0
        a.call("deactivate_lv", vg=VG, name=src)
        a.call("activate_lv", vg=VG, name=src, mode="shared")
        assert lvcreate_s(g1, "aos-cow-lab-shared").exit != 0, "origin active shared"
        a.call("activate_lv", vg=VG, name=src, mode="exclusive")
        assert lvcreate_s(g2, "aos-cow-lab-other").exit != 0, "origin exclusive on the other host"
        assert lvcreate_s(g1, "aos-cow-lab-ex").exit == 0, "origin exclusive on this host"
        r = g2.run_cmd(["lvchange", "-asy", f"{VG}/{src}"], timeout=120)
        print(f"{g2.name}: lvchange -asy of the origin while {g1.name}'s snapshot exists -> exit {r.exit}: "
              f"{r.stderr.strip()}")
        assert r.exit != 0
        assert g1.run_cmd(["lvremove", "--yes", f"{VG}/aos-cow-lab-ex"], timeout=120).exit == 0
        assert not cow_names(g1, g2)
    finally:
        for name in ("aos-cow-lab-ex", "aos-cow-lab-inactive", "aos-cow-lab-shared", "aos-cow-lab-other"):
            g1.run_cmd(["lvremove", "--yes", f"{VG}/{name}"], timeout=120)
        S.cleanup(a, b, lv)
