"""`aosctl doctor` end to end (issue 16): a real controller, simulated agents, the real aosctl.

The cluster is staged through configuration only (the simulated backend's test hook
`[agent] simulated_clock_offset_s`, and `--host-id`, which only the simulated backend takes):
host A and host B announce the same sanlock host_id, host C's clock is 7 s ahead, host D is
stopped until the controller counts it down. The exact findings, their order, the exit
statuses (0 all PASS, 8 warnings only, 9 a FAIL) and a clean stdout under --json are asserted;
the measured skew and round trips are printed.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from conftest import start_sim_agent
from test_authorization import Deployment, dep, secured  # noqa: F401  (their fixtures: the secured deployment)
from test_controller_e2e import wait_for

pytestmark = pytest.mark.timeout(240)

VG = "vg0"


class DoctorCluster:
    def __init__(self, spawn, amqp_url: str, tmp_path: Path, swift_bin: Path) -> None:
        self.spawn = spawn
        self.amqp_url = amqp_url
        self.tmp = tmp_path
        self.swift_bin = swift_bin
        tag = uuid.uuid4().hex[:8]
        self.a, self.b, self.c, self.d = (f"doc-{x}-{tag}" for x in "abcd")
        self.conf = tmp_path / "empty.conf"
        self.conf.write_text("")
        self.agents: dict[str, Any] = {}

    def start_agent(self, host: str, host_id: int, *extra: str) -> Any:
        # Each agent has its own simulated VG (own state file): two hosts with one host_id must
        # not share a simulated lock table; only the controller's view matters here.
        state = self.tmp / host
        state.mkdir()
        proc = start_sim_agent(self.spawn, self.conf, state, host, host_id, VG,
                               "--set", f"DEFAULT.transport_url={self.amqp_url}", *extra)
        self.agents[host] = proc
        return proc

    def start_controller(self) -> Any:
        # Stale after 5 s and down after 6 s (agents announce every second): a busy test machine
        # does not make a live agent stale, and D is down 6 s after it stops.
        return self.spawn(
            "aos-controller", "--config", self.conf,
            "--set", f"DEFAULT.transport_url={self.amqp_url}",
            "--set", "DEFAULT.host=doc-ctl",
            "--set", "controller.agent_stale_after=5",
            "--set", "controller.agent_down_after=6",
            "--set", "controller.agent_response_timeout=60",
            ready="READY", timeout=30)

    def aosctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.swift_bin / "aosctl"), "--config", str(self.conf), "--url", self.amqp_url, *args],
            capture_output=True, text=True, timeout=timeout)

    def doctor(self, *args: str) -> tuple[int, dict[str, Any]]:
        r = self.aosctl("doctor", "--json", *args)
        try:
            doc = json.loads(r.stdout)  # exactly one document on stdout
        except json.JSONDecodeError:
            raise AssertionError(f"stdout is not one JSON document: {r.stdout!r}\nstderr: {r.stderr}") from None
        return r.returncode, doc

    def ours(self, doc: dict[str, Any]) -> list[str]:
        """Non-PASS findings about our hosts, the controller or the caller, in the report's order."""
        mine = {self.a, self.b, self.c, self.d, None}
        return [f"{i['status']} {i['source']} {short(i['host'])} {i['id']}"
                for i in doc["items"] if i["status"] != "PASS" and i["host"] in mine]


def short(host: str | None) -> str:
    return "-" if host is None else host.split("-")[1]


def report_numbers(doc: dict[str, Any]) -> None:
    for a in doc["agents"]:
        print(f"doctor: {a['host']}: liveness={a['liveness']} skew={a['clock_skew_s']} "
              f"±{a['clock_uncertainty_s']} s round_trip={a['round_trip_s']} s")


@pytest.fixture
def cluster(spawn, amqp_url, tmp_path, swift_bin) -> DoctorCluster:
    c = DoctorCluster(spawn, amqp_url, tmp_path, swift_bin)
    c.start_controller()
    c.start_agent(c.a, 1)
    c.start_agent(c.b, 1)
    c.start_agent(c.c, 3, "--set", "agent.simulated_clock_offset_s=7")
    c.start_agent(c.d, 4)
    return c


def agent_status(cluster: DoctorCluster) -> dict[str, str]:
    r = cluster.aosctl("--json", "agents")
    return {a["host"]: a["status"] for a in json.loads(r.stdout)["agents"]} if r.returncode == 0 else {}


def test_doctor_reports_skew_collision_and_down_agent(cluster: DoctorCluster) -> None:
    wait_for(lambda: all(agent_status(cluster).get(h) == "alive" for h in (cluster.a, cluster.b, cluster.c, cluster.d)),
             timeout=30, what="all four agents alive")

    # One healthy host alone: every item PASS, exit 0.
    code, doc = cluster.doctor("--host", cluster.d)
    report_numbers(doc)
    assert code == 0, doc
    assert doc["status"] == "PASS"
    assert {(i["source"], i["id"]) for i in doc["items"]} == {
        ("caller", "broker"), ("caller", "broker_permissions"), ("agent", "lvm_backend"), ("cluster", "clock_skew")}
    assert [a["host"] for a in doc["agents"]] == [cluster.d]

    # The skewed host alone: warnings only, exit 8.
    code, doc = cluster.doctor("--host", cluster.c)
    assert code == 8, doc
    assert cluster.ours(doc) == ["WARN cluster c clock_skew"]

    cluster.agents[cluster.d].stop()
    wait_for(lambda: agent_status(cluster).get(cluster.d) == "down", timeout=30, what=f"{cluster.d} down")

    code, doc = cluster.doctor()
    report_numbers(doc)
    assert code == 9, doc
    assert doc["status"] == "FAIL"
    assert cluster.ours(doc) == [
        "FAIL cluster a host_id_collision",
        "FAIL cluster b host_id_collision",
        "FAIL cluster d agent_down",
        "WARN controller - agent_liveness",
        "WARN controller - auth_enforce",
        "WARN cluster c clock_skew",
    ]
    agents = {a["host"]: a for a in doc["agents"]}
    assert agents[cluster.d]["liveness"] == "down" and agents[cluster.d]["answered"] is False
    assert agents[cluster.d]["last_seen_seconds_ago"] >= 6
    assert all(agents[h]["answered"] for h in (cluster.a, cluster.b, cluster.c))
    # The offset is 7 s; the estimate is off by at most its uncertainty (half the network's round trip).
    skew_c, unc_c = agents[cluster.c]["clock_skew_s"], agents[cluster.c]["clock_uncertainty_s"]
    assert abs(skew_c - 7) <= unc_c + 0.5, agents[cluster.c]
    assert abs(agents[cluster.a]["clock_skew_s"]) <= 2
    collision = next(i for i in doc["items"] if i["id"] == "host_id_collision" and i["host"] == cluster.a)
    assert f"sanlock host_id 1 is also used by {cluster.b}" in collision["finding"]
    assert "lvmlocal.conf" in collision["fix"]
    down = next(i for i in doc["items"] if i["id"] == "agent_down")
    assert down["finding"].startswith("agent down: last announcement ")
    assert [i["status"] for i in doc["items"]] == sorted((i["status"] for i in doc["items"]),
                                                       key=["FAIL", "WARN", "PASS"].index)

    # --host limits the report to that host (the collision with B is still found).
    code, doc = cluster.doctor("--host", cluster.a)
    assert code == 9
    assert cluster.ours(doc) == ["FAIL cluster a host_id_collision"]

    # The human report: worst first, the fix under each finding, nothing but the report on stdout.
    r = cluster.aosctl("doctor")
    assert r.returncode == 9, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["STATUS", "SOURCE", "HOST", "ITEM", "FINDING"]
    assert lines[1].startswith("FAIL") and "host_id_collision" in lines[1]
    assert lines[2].strip().startswith("evidence: ") and lines[3].strip().startswith("fix: ")
    assert any(line.startswith("result: FAIL (") for line in lines)
    assert not any(line.startswith("PASS") for line in lines)
    print("doctor (human):\n" + r.stdout)


def test_doctor_without_a_controller_is_a_failure(cluster: DoctorCluster) -> None:
    # Another topic: no controller listens there.
    r = cluster.aosctl("--json", "--timeout", "3", "--set", "controller.topic=doc-nobody", "doctor")
    assert r.returncode == 9, r.stderr
    doc = json.loads(r.stdout)
    assert [f"{i['status']} {i['source']} {i['id']}" for i in doc["items"]] == [
        "FAIL caller controller", "PASS caller broker"]
    # --direct asks one agent without the controller.
    r = cluster.aosctl("--json", "--direct", cluster.c, "doctor")
    assert r.returncode == 8, r.stderr
    doc = json.loads(r.stdout)
    assert [f"{i['status']} {i['source']} {i['id']}" for i in doc["items"] if i["status"] != "PASS"] == [
        "WARN cluster clock_skew"]


# ---- with per-role broker users and [auth] enforce = true (test_authorization's deployment) ----

def test_doctor_checks_the_callers_role_and_permissions(dep: Deployment) -> None:  # noqa: F811
    # As the operator (aos-admin): the broker let it publish and read its reply, the controller
    # admitted it, and the agents admitted the controller's check_host.
    r = dep.aosctl("--json", "doctor")
    doc = json.loads(r.stdout)
    items = {(i["source"], i["host"], i["id"]): i for i in doc["items"]}
    assert items[("caller", None, "broker")]["status"] == "PASS", doc
    assert "as user aos-admin" in items[("caller", None, "broker")]["finding"]
    assert items[("caller", None, "broker_permissions")]["status"] == "PASS"
    assert items[("controller", None, "auth_enforce")]["status"] == "PASS"
    agents = {a["host"]: a for a in doc["agents"]}
    assert agents[dep.host_a]["answered"] and agents[dep.host_b]["answered"], doc
    assert not [i for i in doc["items"] if i["id"] in ("agent_refused", "caller_role")]
    assert r.returncode in (0, 8, 9)
    print(f"doctor as aos-admin: exit {r.returncode}, status {doc['status']}")

    # As the Cinder driver's broker user: not an operator. Refused by the controller (the admin
    # role) or by the broker (its permissions): either way a FAIL naming the caller's problem.
    r = dep.aosctl("--json", "--timeout", "10", "doctor", user="aos-driver")
    assert r.returncode == 9, r.stderr
    doc = json.loads(r.stdout)
    first = doc["items"][0]
    print(f"doctor as aos-driver: {first['id']}: {first['finding']} ({first['evidence']})")
    assert (first["source"], first["status"]) == ("caller", "FAIL")
    assert first["id"] in ("caller_role", "broker_permissions"), first
