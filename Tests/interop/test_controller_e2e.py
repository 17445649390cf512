"""The controller (aos-controller) end to end, driven by the real oslo.messaging (issue 4).

Every test runs a controller and two real aos-agent processes ("host A" and "host B", simulated
LVM backend sharing one simulated VG through a state file) on the private broker. Host names are
unique per test so that leftovers of another test on the same broker never answer. Agents
announce every second; the controller calls an agent stale after 2 s and down after 3 s.
Nothing sleeps to synchronise: tests wait for output lines or poll a condition with a deadline.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import oslo_messaging
import pytest

from conftest import controller_args, start_cluster, start_sim_agent

pytestmark = pytest.mark.timeout(240)

VG = "vg0"
GiB = 1 << 30
CONTROLLER_TOPIC = "aos-controller"  # the agents announce there


# ---- processes -----------------------------------------------------------------------------


class Cluster:
    def __init__(self, spawn, amqp_url: str, tmp_path: Path, swift_bin: Path) -> None:
        self.spawn = spawn
        self.amqp_url = amqp_url
        self.tmp = tmp_path
        self.swift_bin = swift_bin
        tag = uuid.uuid4().hex[:8]
        self.host_a, self.host_b = f"host-a-{tag}", f"host-b-{tag}"
        self.conf = tmp_path / "empty.conf"  # isolates the programs from /etc/aos/aos.conf
        self.conf.write_text("")
        self.agents: dict[str, Any] = {}
        self.controllers: list[Any] = []

    def start_agent(self, host: str, host_id: int):
        proc = start_sim_agent(self.spawn, self.conf, self.tmp, host, host_id, VG,
                               "--set", f"DEFAULT.transport_url={self.amqp_url}")
        self.agents[host] = proc
        return proc

    def start_controller(self, name: str = "ctl-1", *extra: str):
        proc = self.spawn(
            "aos-controller", "--config", self.conf,
            "--set", f"DEFAULT.transport_url={self.amqp_url}",
            *controller_args(name),
            "--set", "controller.agent_response_timeout=60",
            *extra,
            ready="READY", timeout=30)
        self.controllers.append(proc)
        return proc

    def aosctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.swift_bin / "aosctl"), "--config", str(self.conf), "--url", self.amqp_url, *args],
            capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cluster(spawn, amqp_url, tmp_path, swift_bin) -> Cluster:
    return start_cluster(Cluster(spawn, amqp_url, tmp_path, swift_bin))


@pytest.fixture
def ctl(oslo_transport) -> Callable[..., Any]:
    """ctl(method, timeout=30, **kwargs): a call to the controller through oslo.messaging."""
    def call(method: str, timeout: float = 30, **kwargs: Any) -> Any:
        client = oslo_messaging.get_rpc_client(
            oslo_transport, oslo_messaging.Target(topic=CONTROLLER_TOPIC, version="1.0"), timeout=timeout)
        return client.call({"request_id": f"req-{uuid.uuid4()}"}, method, **kwargs)
    return call


def wait_for(predicate: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.1)  # polling interval, not synchronisation
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def agent_statuses(ctl) -> dict[str, str]:
    return {a["host"]: a["status"] for a in ctl("list_agents")["agents"]}


def wait_alive(ctl, *hosts: str) -> None:
    wait_for(lambda: all(agent_statuses(ctl).get(h) == "alive" for h in hosts), what=f"{hosts} alive")


def remote_error(fn: Callable[[], Any]) -> oslo_messaging.RemoteError:
    with pytest.raises(oslo_messaging.RemoteError) as info:
        fn()
    return info.value


def active_on(volume: dict) -> set[tuple[str, str]]:
    return {(a["host"], a["mode"]) for a in volume["active_on"]}


# ---- the API through oslo.messaging --------------------------------------------------------


def test_every_api_call_with_results_and_error_codes(cluster, ctl):
    a, b = cluster.host_a, cluster.host_b
    wait_alive(ctl, a, b)

    agents = ctl("list_agents")
    by_host = {x["host"]: x for x in agents["agents"]}
    assert by_host[a]["host_id"] == 1 and by_host[b]["host_id"] == 2
    assert by_host[a]["vgs"] == {VG: {"lockspace": "started"}}
    assert by_host[a]["host_id_conflict"] is False and agents["host_id_conflicts"] == []

    stats = ctl("pool_stats", vg=VG)
    assert stats["available"] is True and stats["total_bytes"] > 0 and stats["free_bytes"] > 0
    assert stats["hosts"][a] == {"status": "alive", "lockspace": "started"}
    free_before = stats["free_bytes"]

    created = ctl("create_volume", vg=VG, name="volume-1", size_gb=1)
    assert created["size_bytes"] == GiB and created["changed"] is True and created["host"] in (a, b)
    assert ctl("create_volume", vg=VG, name="volume-1", size_bytes=GiB)["changed"] is False
    e = remote_error(lambda: ctl("create_volume", vg=VG, name="volume-1", size_gb=2))
    assert e.exc_type == "SizeConflict"

    vol = ctl("get_volume", vg=VG, name="volume-1")
    assert vol["size_bytes"] == GiB and vol["active_on"] == []
    listed = ctl("list_volumes", vg=VG)
    assert [v["name"] for v in listed["volumes"]] == ["volume-1"]
    assert ctl("pool_stats")["free_bytes"] <= free_before - GiB  # vg implied: the agents serve one

    r = ctl("activate_volume", vg=VG, name="volume-1", host=a, mode="exclusive")
    assert r["changed"] is True and active_on(r) == {(a, "exclusive")}
    assert ctl("activate_volume", vg=VG, name="volume-1", host=a, mode="exclusive")["changed"] is False

    # A refused exclusive activation on B names A as the holder.
    e = remote_error(lambda: ctl("activate_volume", vg=VG, name="volume-1", host=b, mode="exclusive"))
    assert e.exc_type == "LockedByOtherHost"
    assert a in e.value and "exclusive" in e.value
    e = remote_error(lambda: ctl("activate_volume", vg=VG, name="volume-1", host=b, mode="shared"))
    assert e.exc_type == "LockedByOtherHost" and a in e.value

    locks = ctl("lock_status", host=a)
    assert any(lock.get("name") == "volume-1" for lock in locks["locks"])

    # Extend on the exclusive holder.
    ext = ctl("extend_volume", vg=VG, name="volume-1", size_gb=2)
    assert ext["host"] == a and ext["size_bytes"] == 2 * GiB

    # Deleting an active volume is refused and names where it is active.
    e = remote_error(lambda: ctl("delete_volume", vg=VG, name="volume-1"))
    assert e.exc_type == "Busy" and a in e.value

    # Shared on both hosts after deactivation; extend with shared update + refresh on the other.
    assert ctl("deactivate_volume", vg=VG, name="volume-1", host=a)["changed"] is True
    ctl("activate_volume", vg=VG, name="volume-1", host=a, mode="shared")
    r = ctl("activate_volume", vg=VG, name="volume-1", host=b, mode="shared")
    assert active_on(r) == {(a, "shared"), (b, "shared")}
    ext = ctl("extend_volume", vg=VG, name="volume-1", size_bytes=3 * GiB)
    assert ext["size_bytes"] == 3 * GiB and set(ext["refreshed_hosts"]) == {a, b}
    vol = ctl("get_volume", vg=VG, name="volume-1")
    assert vol["size_bytes"] == 3 * GiB and active_on(vol) == {(a, "shared"), (b, "shared")}

    # The cluster-wide map reaches list_agents through the agents' own announcements.
    wait_for(lambda: all(any(x["name"] == "volume-1" for x in ag["active_lvs"])
                         for ag in ctl("list_agents")["agents"] if ag["host"] in (a, b)),
             what="activations announced")

    for h in (a, b):
        ctl("deactivate_volume", vg=VG, name="volume-1", host=h)
    assert ctl("deactivate_volume", vg=VG, name="volume-1", host=a)["changed"] is False
    deleted = ctl("delete_volume", vg=VG, name="volume-1", volume_clear="none")
    assert deleted["changed"] is True
    assert ctl("delete_volume", vg=VG, name="volume-1")["changed"] is False
    assert remote_error(lambda: ctl("get_volume", vg=VG, name="volume-1")).exc_type == "NotFound"

    # Bad input: a clear InvalidArgument, nothing reaches an agent.
    for kwargs in ({"vg": VG, "name": "--help", "size_gb": 1}, {"vg": VG, "name": "x"},
                   {"vg": VG, "name": "x", "size_bytes": -1}, {"vg": VG, "name": "a;b", "size_gb": 1}):
        assert remote_error(lambda kw=kwargs: ctl("create_volume", **kw)).exc_type == "InvalidArgument"
    e = remote_error(lambda: ctl("activate_volume", vg=VG, name="x", host=a, mode="both"))
    assert e.exc_type == "InvalidArgument"
    assert remote_error(lambda: ctl("create_volume", vg="nope", name="x", size_gb=1)).exc_type == "UnknownVg"
    e = remote_error(lambda: ctl("activate_volume", vg=VG, name="x", host="no-such-host"))
    assert e.exc_type == "AgentUnavailable"
    assert remote_error(lambda: ctl("no_such_method")).exc_type == "NoSuchMethod"


def test_preferred_host_serves_create_and_delete(spawn, amqp_url, tmp_path, swift_bin, ctl):
    c = Cluster(spawn, amqp_url, tmp_path, swift_bin)
    c.start_agent(c.host_a, 1)
    c.start_agent(c.host_b, 2)
    c.start_controller("ctl-pref", "--set", f"controller.preferred_hosts={c.host_b}")
    wait_alive(ctl, c.host_a, c.host_b)
    for i in range(3):
        assert ctl("create_volume", vg=VG, name=f"volume-{i}", size_gb=1)["host"] == c.host_b
        assert ctl("delete_volume", vg=VG, name=f"volume-{i}")["host"] == c.host_b


# ---- failures ------------------------------------------------------------------------------


def test_killed_agent_is_agent_unavailable_within_seconds(cluster, ctl):
    a, b = cluster.host_a, cluster.host_b
    wait_alive(ctl, a, b)
    ctl("create_volume", vg=VG, name="volume-k", size_gb=1)
    cluster.agents[b].signal(signal.SIGKILL)
    cluster.agents[b].proc.wait(timeout=10)

    # Sent while B still looks alive: the controller gives up once B is down, not after 60 s.
    start = time.monotonic()
    e = remote_error(lambda: ctl("activate_volume", vg=VG, name="volume-k", host=b, timeout=50))
    elapsed = time.monotonic() - start
    assert e.exc_type == "AgentUnavailable" and b in e.value
    assert elapsed < 10, elapsed

    # Now B is known down: the refusal is immediate.
    start = time.monotonic()
    e = remote_error(lambda: ctl("activate_volume", vg=VG, name="volume-k", host=b, timeout=50))
    assert e.exc_type == "AgentUnavailable" and "down" in e.value
    assert time.monotonic() - start < 2
    assert agent_statuses(ctl)[b] == "down"
    # A deactivate on the down host is released through A instead (test_evacuate_e2e.py).
    r = ctl("deactivate_volume", vg=VG, name="volume-k", host=b, timeout=50)
    assert r["released"] is True and r["released_by"] == a, r

    # Requests any host can serve go to A.
    assert ctl("get_volume", vg=VG, name="volume-k")["source_host"] == a
    assert ctl("pool_stats", vg=VG)["hosts"][b]["status"] == "down"

    # aosctl --direct to the dead agent: its queue still exists, nobody answers -> timeout, exit 6.
    r = cluster.aosctl("--direct", b, "--timeout", "2", "--json", "agents")
    assert r.returncode == 6, r
    assert json.loads(r.stdout)["error"]["code"] == "timed_out"
    # Through the controller: unreachable, exit 5.
    r = cluster.aosctl("volume", "activate", "volume-k", "--host", b, "--json")
    assert r.returncode == 5, r
    assert json.loads(r.stdout)["error"]["code"] == "agent_unavailable"


def test_controller_restart_rebuilds_its_view(cluster, ctl):
    a, b = cluster.host_a, cluster.host_b
    wait_alive(ctl, a, b)
    ctl("create_volume", vg=VG, name="volume-r", size_gb=1)
    ctl("activate_volume", vg=VG, name="volume-r", host=a, mode="exclusive")
    assert cluster.controllers[0].stop() == 0  # graceful stop on SIGTERM

    cluster.start_controller("ctl-2")
    # Within an announcement interval the new controller knows both agents and the activation.
    wait_alive(ctl, a, b)
    wait_for(lambda: active_on(ctl("get_volume", vg=VG, name="volume-r")) == {(a, "exclusive")},
             what="activation rebuilt")
    e = remote_error(lambda: ctl("activate_volume", vg=VG, name="volume-r", host=b))
    assert e.exc_type == "LockedByOtherHost" and a in e.value
    ctl("deactivate_volume", vg=VG, name="volume-r", host=a)
    ctl("delete_volume", vg=VG, name="volume-r")


def test_two_controllers_serve_at_once(cluster, ctl):
    a, b = cluster.host_a, cluster.host_b
    second = cluster.start_controller("ctl-2")
    first = cluster.controllers[0]
    wait_alive(ctl, a, b)
    # Both get every announcement: each one's view must show both agents alive.
    for _ in range(6):
        assert set(agent_statuses(ctl)) >= {a, b}
    names = [f"volume-2c-{i}" for i in range(8)]
    for n in names:
        ctl("create_volume", vg=VG, name=n, size_gb=1)
    served = [p for p in (first, second) if "volume created" in p.stderr_text()]
    assert len(served) == 2, "requests were not shared between the controllers"

    # An activation made through one controller is a named conflict through either.
    ctl("activate_volume", vg=VG, name=names[0], host=a)
    for _ in range(4):
        e = remote_error(lambda: ctl("activate_volume", vg=VG, name=names[0], host=b))
        assert e.exc_type == "LockedByOtherHost"
    # One controller goes away: the other serves everything.
    first.stop()
    for n in names[1:]:
        assert ctl("delete_volume", vg=VG, name=n)["changed"] is True


def test_host_id_collision_is_flagged(spawn, amqp_url, tmp_path, swift_bin, ctl):
    c = Cluster(spawn, amqp_url, tmp_path, swift_bin)
    c.start_agent(c.host_a, 7)
    c.start_agent(c.host_b, 7)
    controller = c.start_controller("ctl-dup")
    wait_alive(ctl, c.host_a, c.host_b)
    agents = ctl("list_agents")
    assert {"host_id": 7, "hosts": sorted([c.host_a, c.host_b])} in agents["host_id_conflicts"]
    assert all(x["host_id_conflict"] for x in agents["agents"] if x["host"] in (c.host_a, c.host_b))
    wait_for(lambda: "HOST_ID COLLISION" in controller.stderr_text(), what="collision logged")


# ---- aosctl --------------------------------------------------------------------------------


def test_aosctl_json_output_and_exit_codes(cluster, ctl):
    a, b = cluster.host_a, cluster.host_b
    wait_alive(ctl, a, b)

    def run(*args: str, code: int = 0) -> Any:
        r = cluster.aosctl("--json", *args)
        assert r.returncode == code, f"aosctl {' '.join(args)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        return json.loads(r.stdout) if r.stdout.strip() else None

    assert {x["host"] for x in run("agents")["agents"]} >= {a, b}
    assert run("volume", "create", "volume-c", "--size", "1G")["size_bytes"] == GiB
    assert run("volume", "activate", "volume-c", "--host", a, "--exclusive")["mode"] == "exclusive"
    err = run("volume", "activate", "volume-c", "--host", b, "--exclusive", code=4)["error"]
    assert err["code"] == "locked_by_other_host" and err["details"]["holder_host"] == a
    assert run("volume", "show", "volume-c")["active_on"] == [{"host": a, "mode": "exclusive"}]
    assert [v["name"] for v in run("volume", "list")["volumes"]] == ["volume-c"]
    assert run("pool", "stats")["lv_count"] == 1
    assert run("locks", "--host", a)["host"] == a
    assert run("volume", "deactivate", "volume-c", "--host", a)["changed"] is True
    assert run("volume", "extend", "volume-c", "--size", "2G")["size_bytes"] == 2 * GiB
    # Global options before the command, and --direct to one agent.
    r = cluster.aosctl("--json", "--direct", b, "volume", "show", "volume-c")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["size_bytes"] == 2 * GiB
    assert run("volume", "delete", "volume-c")["changed"] is True
    assert run("volume", "show", "volume-c", code=3)["error"]["code"] == "not_found"
    assert run("volume", "create", "bad;name", "--size", "1", code=2)["error"]["code"] == "invalid_argument"

    # Usage errors from the parser: exit 2, nothing on stdout.
    r = cluster.aosctl("volume", "activate", "volume-c")
    assert r.returncode == 2 and r.stdout == "" and "--host" in r.stderr
    r = cluster.aosctl("volume", "create", "x", "--size", "lots")
    assert r.returncode == 2 and r.stdout == ""
    # No controller on that topic: unreachable, exit 5.
    r = cluster.aosctl("--json", "--set", "controller.topic=aos-nobody", "agents")
    assert r.returncode == 5 and json.loads(r.stdout)["error"]["code"] == "unreachable"
    # No broker: unreachable, exit 5.
    r = subprocess.run([str(cluster.swift_bin / "aosctl"), "--config", str(cluster.conf), "--url",
                        "amqp://guest:guest@127.0.0.1:1/", "--timeout", "2", "agents"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 5 and "broker" in r.stderr

    # Human output: a table on stdout.
    r = cluster.aosctl("agents")
    assert r.returncode == 0 and r.stdout.startswith("HOST") and a in r.stdout


# ---- jobs (issue 13) ----------------------------------------------------------------------


def test_copy_and_wipe_jobs_end_to_end(cluster, ctl):
    """copy_volume → job_info until succeeded; delete_volume's wipe job; list_jobs; aosctl jobs."""
    a, b = cluster.host_a, cluster.host_b
    wait_alive(ctl, a, b)
    finished = ("succeeded", "failed", "cancelled")

    def wait_job(job_id: str, **kw: Any) -> dict:
        return wait_for(lambda: (j := ctl("job_info", id=job_id, **kw))["state"] in finished and j,
                        timeout=90, what=f"job {job_id} finished")

    ctl("create_volume", vg=VG, name="volume-src", size_gb=1)
    ctl("activate_volume", vg=VG, name="volume-src", host=b, mode="exclusive")
    # Only the exclusive holder can read the source: the copy runs there.
    r = ctl("copy_volume", vg=VG, source="volume-src", target="volume-dst", verify=True)
    assert r["host"] == b and r["changed"] is True, r
    job = r["job"]
    assert job["kind"] == "copy" and job["source"] == "volume-src" and job["target"] == "volume-dst"
    assert job["host"] == b and job["verify"] is True
    # Another host is refused while b holds the source exclusively, before any agent is asked.
    err = remote_error(lambda: ctl("copy_volume", vg=VG, source="volume-src", target="volume-x", host=a))
    assert err.exc_type == "LockedByOtherHost" and b in err.value

    done = wait_job(job["id"])
    assert done["state"] == "succeeded", done
    print(f"copy job: {done['total_bytes']} bytes in {done['finished_at'] - done['started_at']:.3f} s "
          f"(queued {done['started_at'] - done['created_at']:.3f} s), verify={done['verify']}")
    assert done["done_bytes"] == done["total_bytes"] == GiB and done["checksum"]
    assert ctl("job_info", id=job["id"], host=b)["id"] == job["id"]
    dst = ctl("get_volume", vg=VG, name="volume-dst")
    assert dst["size_bytes"] == GiB and dst["active_on"] == []
    assert all(not v["name"].startswith("aos-") for v in ctl("list_volumes", vg=VG)["volumes"])
    # The same request again: the same job, nothing new.
    again = ctl("copy_volume", vg=VG, source="volume-src", target="volume-dst", verify=True)
    assert again["changed"] is False and again["job"]["id"] == job["id"]
    assert remote_error(lambda: ctl("job_info", id="no-such-job")).exc_type == "NotFound"

    # A delete that wipes: the volume is gone at once, the wipe is a job.
    d = ctl("delete_volume", vg=VG, name="volume-dst", volume_clear="zero")
    wipe = d["job"]
    assert d["changed"] is True and wipe["kind"] == "wipe" and wipe["source"] == "volume-dst", d
    assert wipe["target"].startswith("aos-wipe-")
    assert remote_error(lambda: ctl("get_volume", vg=VG, name="volume-dst")).exc_type == "NotFound"
    assert wait_job(wipe["id"])["state"] == "succeeded"

    jobs = ctl("list_jobs")
    ids = [j["id"] for j in jobs["jobs"]]
    assert job["id"] in ids and wipe["id"] in ids
    created = [j["created_at"] for j in jobs["jobs"]]
    assert created == sorted(created, reverse=True)
    assert {a, b} <= set(jobs["hosts"]) and jobs["unreachable"] == {}
    stats = ctl("pool_stats", vg=VG)
    assert stats["wiping_lv_count"] == 0 and stats["wiping_bytes"] == 0 and "warnings" in stats

    # aosctl: list, show by a short id, wait, copy --wait, and the exit statuses.
    def run(*args: str, code: int = 0, timeout: float = 90) -> Any:
        p = cluster.aosctl("--json", *args, timeout=timeout)
        assert p.returncode == code, f"aosctl {' '.join(args)}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
        return json.loads(p.stdout) if p.stdout.strip() else None

    assert job["id"] in [j["id"] for j in run("jobs", "list")["jobs"]]
    assert run("jobs", "show", job["id"][:8])["id"] == job["id"]
    assert run("jobs", "wait", wipe["id"])["state"] == "succeeded"
    assert run("jobs", "show", "no-such-job", code=3)["error"]["code"] == "not_found"
    copied = run("volume", "copy", "volume-src", "volume-big", "--size-gb", "2", "--wait")
    assert copied["job"]["state"] == "succeeded" and copied["host"] == b
    assert ctl("get_volume", vg=VG, name="volume-big")["size_bytes"] == 2 * GiB
    ctl("create_volume", vg=VG, name="volume-other", size_gb=1)
    err = run("volume", "copy", "volume-src", "volume-other", code=4)["error"]
    assert err["code"] == "already_exists"
    table = cluster.aosctl("jobs", "list")
    assert table.returncode == 0 and table.stdout.startswith("ID") and "volume-src -> volume-big" in table.stdout
    human = cluster.aosctl("volume", "delete", "volume-big", "--volume-clear", "zero")
    assert human.returncode == 0 and "wiped by job" in human.stdout, human.stdout


def test_aosctl_jobs_wait_timeout_progress_and_cancel(spawn, amqp_url, tmp_path, swift_bin, ctl):
    """A rate-limited copy (8 MiB/s: a 1 GiB copy takes minutes): `jobs wait --timeout` gives up
    with exit 6 while it runs (drawing a progress bar on a terminal), `jobs cancel` stops it,
    `jobs wait` then exits 1 with `cancelled`, and nothing of the target is left."""
    import os
    import pty

    cluster = Cluster(spawn, amqp_url, tmp_path, swift_bin)
    for host, host_id in ((cluster.host_a, 1), (cluster.host_b, 2)):
        cluster.agents[host] = start_sim_agent(
            spawn, cluster.conf, cluster.tmp, host, host_id, VG,
            "--set", f"DEFAULT.transport_url={amqp_url}", "--set", f"agent.volume_copy_bps_limit={8 << 20}")
    cluster.start_controller()
    wait_alive(ctl, cluster.host_a, cluster.host_b)
    ctl("create_volume", vg=VG, name="volume-s", size_gb=1)

    def run(*args: str, code: int = 0) -> Any:
        p = cluster.aosctl("--json", *args, timeout=60)
        assert p.returncode == code, f"aosctl {' '.join(args)}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
        return json.loads(p.stdout) if p.stdout.strip() else None

    started = run("volume", "copy", "volume-s", "volume-t")
    job_id = started["job"]["id"]
    assert started["job"]["state"] in ("queued", "running")

    # stderr on a terminal: the progress bar is drawn there; stdout stays one JSON document.
    master, slave = pty.openpty()
    p = subprocess.Popen([str(swift_bin / "aosctl"), "--config", str(cluster.conf), "--url", amqp_url,
                          "--json", "--timeout", "3", "jobs", "wait", job_id],
                         stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    out, _ = p.communicate(timeout=60)
    bar = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other end is closed
            break
        if not chunk:
            break
        bar += chunk
    os.close(master)
    assert p.returncode == 6, (out, bar)
    assert json.loads(out)["error"]["code"] == "timed_out"
    drawn = re.findall(rb"\rcopy [0-9a-f]{8} \[[#.]{30}\] \d+% \w+", bar)
    assert drawn, bar
    print("progress bar:", drawn[-1].decode().replace("\r", ""))

    table = cluster.aosctl("jobs", "list")
    assert table.returncode == 0 and "volume-s -> volume-t" in table.stdout, table.stdout
    print(table.stdout)
    cancelled = run("jobs", "cancel", job_id[:8])
    assert cancelled["id"] == job_id and cancelled["cancel_requested"] is True
    final = run("jobs", "wait", job_id, code=1)
    assert final["state"] == "cancelled" and final["id"] == job_id
    assert remote_error(lambda: ctl("get_volume", vg=VG, name="volume-t")).exc_type == "NotFound"
    assert [v["name"] for v in ctl("list_volumes", vg=VG)["volumes"]] == ["volume-s"]
