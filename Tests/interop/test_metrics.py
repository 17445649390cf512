"""Prometheus metrics of the agent and the controller (issue 16, docs/operations.md "Metrics").

A controller and one simulated agent run with metrics on (HTTP listener on a free loopback
port, the agent's textfile too, samples every second). A scripted sequence through the
controller — create, activate, deactivate, delete, and a failing activate — must show in both
scrapes with exact counts; the agent's textfile must hold the same series; the alert rules and
the Grafana dashboard in deploy/ must parse and name only series the programs export.
Nothing sleeps to synchronise: waits poll a condition with a deadline.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import oslo_messaging
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import controller_args, start_sim_agent
from test_controller_e2e import wait_for

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "aos-alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "aos.json"
VG = "vg0"
CONTROLLER_TOPIC = "aos-controller"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return str(r.read().decode())


def parse(text: str) -> tuple[Samples, set[str]]:
    """Samples by (name, sorted labels), and the family names, through prometheus_client's own
    parser of the text format (so a format error fails here)."""
    samples: Samples = {}
    families: set[str] = set()
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, families


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def ctl(oslo_transport) -> Callable[..., Any]:
    def call(method: str, timeout: float = 30, **kwargs: Any) -> Any:
        client = oslo_messaging.get_rpc_client(
            oslo_transport, oslo_messaging.Target(topic=CONTROLLER_TOPIC, version="1.0"), timeout=timeout)
        return client.call({"request_id": f"req-{uuid.uuid4()}"}, method, **kwargs)
    return call


def exported_names(families: set[str]) -> set[str]:
    """The series names a family gives PromQL (a histogram's _bucket/_count/_sum)."""
    names = set(families)
    for f in families:
        names |= {f + "_bucket", f + "_count", f + "_sum", f + "_total"}
    return names


def aos_names(expr: str) -> set[str]:
    return set(re.findall(r"\baos_[a-z0-9_]+", expr))


def test_deploy_files_parse() -> None:
    rules = yaml.safe_load(ALERTS.read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"]]
    names = {r["alert"] for r in alerts}
    assert {"AOSAgentDown", "AOSLockspaceLost", "AOSLeaseRenewalFailing", "AOSRPCErrorRate", "AOSVGFreeLow",
            "AOSVGMetadataNearlyFull", "AOSJobsFailing"} <= names
    for r in alerts:
        assert r["expr"].strip() and r["labels"]["severity"] in ("critical", "warning")
        assert r["annotations"]["summary"] and r["annotations"]["description"]
    dash = json.loads(DASHBOARD.read_text())
    assert dash["title"] and dash["panels"]
    assert all(t["expr"] for p in dash["panels"] for t in p.get("targets", []))
    promtool = shutil.which("promtool")
    if promtool:  # not installed here; where it is, it checks the PromQL too
        subprocess.run([promtool, "check", "rules", str(ALERTS)], check=True)


def test_metrics_after_a_scripted_run(spawn, amqp_url, tmp_path: Path, ctl) -> None:
    tag = uuid.uuid4().hex[:8]
    host = f"host-m-{tag}"
    conf = tmp_path / "empty.conf"
    conf.write_text("")
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    agent_port, controller_port = free_port(), free_port()
    agent = start_sim_agent(
        spawn, conf, tmp_path, host, 1, VG,
        "--set", f"DEFAULT.transport_url={amqp_url}",
        "--set", f"agent.metrics_listen=127.0.0.1:{agent_port}",
        "--set", f"agent.metrics_textfile_dir={textfiles}",
        "--set", "agent.metrics_interval=1")
    spawn("aos-controller", "--config", conf, "--set", f"DEFAULT.transport_url={amqp_url}",
          *controller_args(f"ctl-m-{tag}"),
          "--set", f"controller.metrics_listen=127.0.0.1:{controller_port}",
          "--set", "controller.metrics_interval=1", ready="READY", timeout=30)
    wait_for(lambda: any(a["host"] == host and a["status"] == "alive" for a in ctl("list_agents")["agents"]),
             timeout=30, what="agent alive")

    name, missing = f"volume-{tag}", f"volume-missing-{tag}"
    assert ctl("create_volume", vg=VG, name=name, size_gb=1)["changed"] is True
    assert ctl("activate_volume", vg=VG, name=name, host=host, mode="exclusive")["changed"] is True
    assert ctl("deactivate_volume", vg=VG, name=name, host=host)["changed"] is True
    assert ctl("delete_volume", vg=VG, name=name, volume_clear="none")["changed"] is True
    with pytest.raises(oslo_messaging.RemoteError) as failed:
        ctl("activate_volume", vg=VG, name=missing, host=host, mode="exclusive")
    assert failed.value.exc_type == "NotFound"

    # The agent: RPC counts by method and code (exact: nothing else calls these methods).
    a, a_families = parse(scrape(agent_port))
    rpc = "aos_rpc_requests_total"
    assert value(a, rpc, method="create_lv", code="ok") == 1
    assert value(a, rpc, method="activate_lv", code="ok") == 1
    assert value(a, rpc, method="deactivate_lv", code="ok") == 1
    assert value(a, rpc, method="delete_lv", code="ok") == 1
    assert value(a, rpc, method="activate_lv", code="not_found") == 1
    assert value(a, "aos_rpc_request_duration_seconds_count", method="create_lv") == 1
    assert value(a, "aos_rpc_request_duration_seconds_bucket", method="create_lv", le="+Inf") == 1
    # Labels stay bounded: no LV name anywhere in the text.
    assert name not in scrape(agent_port) and missing not in scrape(agent_port)
    # LVM commands (the simulated backend records the command the real one would run).
    assert value(a, "aos_lvm_command_duration_seconds_count", command="lvcreate") == 1
    assert value(a, "aos_lvm_command_duration_seconds_count", command="lvremove") == 1
    assert value(a, "aos_lvm_command_failures_total", command="lvchange", code="not_found") + \
        value(a, "aos_lvm_command_failures_total", command="lvs", code="not_found") >= 1
    assert value(a, "aos_broker_connected") == 1
    assert value(a, "aos_agent_announcements_total", result="sent") >= 1

    # The agent's samples (every second): VG, lockspace, lease, jobs.
    def sampled() -> Samples | None:
        s, _ = parse(scrape(agent_port))
        ok = value(s, "aos_vg_size_bytes", vg=VG) > 0 and value(s, "aos_agent_ready") == 1
        return s if ok else None
    s = wait_for(sampled, timeout=30, what="the agent's samples")
    assert 0 < value(s, "aos_vg_free_bytes", vg=VG) <= value(s, "aos_vg_size_bytes", vg=VG)
    assert value(s, "aos_vg_metadata_area_size_bytes", vg=VG) > 0
    assert value(s, "aos_lockspace_state", vg=VG, state="started") == 1
    assert value(s, "aos_lockspace_state", vg=VG, state="lost") == 0
    assert value(s, "aos_lockspace_lease_ok", vg=VG) == 1
    assert value(s, "aos_sanlock_lockspace_joined", vg=VG) == 1
    assert value(s, "aos_jobs", kind="wipe", state="failed") == 0
    assert value(s, "aos_agent_active_lvs") == 0

    # The controller: its own methods, and the agents' announcements received.
    c, c_families = parse(scrape(controller_port))
    for method in ("create_volume", "activate_volume", "deactivate_volume", "delete_volume"):
        assert value(c, rpc, method=method, code="ok") == 1, method
    assert value(c, rpc, method="activate_volume", code="not_found") == 1
    assert value(c, rpc, method="agent_announce", code="ok") >= 1
    assert value(c, "aos_broker_connected") == 1
    wait_for(lambda: value(parse(scrape(controller_port))[0], "aos_controller_agents", state="alive") >= 1,
             timeout=30, what="liveness sampled")

    # The textfile holds the same series (rewritten after each sample, so one written since the
    # scripted run has them).
    prom = textfiles / "aos-agent.prom"

    def textfile() -> Samples | None:
        t = parse(prom.read_text())[0] if prom.exists() else {}
        return t if value(t, rpc, method="delete_lv", code="ok") == 1 else None
    t = wait_for(textfile, timeout=30, what="the textfile after the scripted run")
    assert value(t, rpc, method="create_lv", code="ok") == 1
    assert value(t, rpc, method="activate_lv", code="not_found") == 1
    assert [p.name for p in textfiles.iterdir()] == ["aos-agent.prom"]

    # Every series the alert rules and the dashboard use is exported by one of the programs.
    exported = exported_names(a_families | c_families)
    rules = yaml.safe_load(ALERTS.read_text())
    used = {n for g in rules["groups"] for r in g["rules"] for n in aos_names(r["expr"])}
    dash = json.loads(DASHBOARD.read_text())
    used |= {n for p in dash["panels"] for t in p.get("targets", []) for n in aos_names(t["expr"])}
    assert used and used <= exported, f"not exported: {sorted(used - exported)}"

    # A request for anything else is refused; the listener keeps serving.
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{agent_port}/", timeout=10)
    assert e.value.code == 404
    assert agent.proc.poll() is None
