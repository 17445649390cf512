"""Agent jobs survive `kill -9` (issue 13): the real aos-agent binary, simulated LVM on a state
file, driven by the real oslo.messaging.

A rate limit (`volume_copy_bps_limit`) makes the job take seconds, so it can be killed in the
middle; the restarted agent (no limit) must resume it from its last checkpoint in `jobs.json`
and finish it, and a half-copied LV must never carry the target's name.
"""

from __future__ import annotations

import json
import re
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import oslo_messaging
import pytest

from test_agent_rpc import VG, agent_args, remote_error

pytestmark = pytest.mark.timeout(180)

MiB = 1 << 20
LIMIT = 16 * MiB  # bytes/s: 16 MiB chunks, one per second


def poll(fetch: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool], timeout: float,
         what: str) -> dict[str, Any]:
    """Asks until `done` holds (a bounded poll of a remote state, not a sleep standing in for it)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"{what}: still {value} after {timeout}s"
        time.sleep(0.05)


@pytest.fixture
def host() -> str:
    return f"host-j-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def agent(spawn, amqp_url, tmp_path, host):
    def start(*extra: str):
        return spawn("aos-agent", *agent_args(amqp_url, tmp_path, host, 1, *extra),
                     ready=f"READY host={host}", timeout=60)
    return start


@pytest.fixture
def client(oslo_transport, host):
    target = oslo_messaging.Target(topic="aos-agent", server=host, version="1.0")
    return oslo_messaging.get_rpc_client(oslo_transport, target, timeout=20)


def job_file(tmp_path: Path, host: str) -> dict[str, Any]:
    return {j["id"]: j for j in json.loads((tmp_path / host / "jobs.json").read_text())["jobs"]}


def resumed_at(stderr: str, job_id: str) -> int:
    """done_bytes of the agent's 'resuming job' log line for this job."""
    for line in stderr.splitlines():
        m = re.search(r"\bdone_bytes=(\d+)", line)
        if "resuming job" in line and f"job={job_id}" in line and m:
            return int(m.group(1))
    raise AssertionError(f"no 'resuming job' line for {job_id} in the agent's log")


@pytest.mark.parametrize("kind", ["wipe", "copy"])
def test_a_job_killed_midway_resumes_and_finishes(kind, agent, client, tmp_path, host):
    first = agent("--set", f"agent.volume_copy_bps_limit={LIMIT}")
    source = f"volume-j-{uuid.uuid4().hex[:8]}"
    target = f"{source}-copy"
    client.call({}, "create_lv", vg=VG, name=source, size_bytes=128 * MiB)

    start = time.monotonic()
    if kind == "wipe":
        r = client.call({}, "delete_lv", vg=VG, name=source, volume_clear="zero")
    else:
        r = client.call({}, "copy_lv", vg=VG, source=source, target=target, verify=True)
    returned = time.monotonic() - start
    job = r["job"]
    print(f"\n{kind}: the call returned in {returned * 1000:.0f} ms with the job {job['state']}")
    assert job["state"] in ("queued", "running") and job["total_bytes"] == 128 * MiB
    if kind == "wipe":  # gone under its name at once
        assert remote_error(client.call, {}, "lv_info", vg=VG, name=source).exc_type == "NotFound"

    # Past the first checkpoint (the first chunk is written at once, the next ones each second).
    poll(lambda: client.call({}, "job_info", id=job["id"]), lambda j: j["done_bytes"] >= 2 * LIMIT, 30,
         f"{kind} progress")
    first.signal(signal.SIGKILL)
    first.proc.wait(timeout=10)
    on_disk = job_file(tmp_path, host)[job["id"]]
    assert on_disk["state"] == "running" and 0 < on_disk["doneBytes"] < 128 * MiB, on_disk
    if kind == "copy":  # the simulated VG's state file, read while no agent runs
        cluster = (tmp_path / "cluster.json").read_text()
        assert f'"aos-copy-{job["id"]}"' in cluster
        assert f'"{target}"' not in cluster, "a half-copied LV never carries the target's name"

    second = agent()
    done = poll(lambda: client.call({}, "job_info", id=job["id"]), lambda j: j["state"] in ("succeeded", "failed"),
                60, f"{kind} after the restart")
    assert done["state"] == "succeeded", done
    assert done["attempts"] == 2 and done["done_bytes"] == 128 * MiB
    assert resumed_at(second.stderr_text(), job["id"]) == on_disk["doneBytes"], "resumed from the checkpoint"
    names = {lv["name"] for lv in client.call({}, "list_lvs", vg=VG)["lvs"]}
    hidden = job["target"] if kind == "wipe" else f"aos-copy-{job['id']}"
    assert hidden not in names
    if kind == "copy":
        assert target in names and source in names and done["checksum"]
    else:
        assert source not in names and job["target"] not in names
