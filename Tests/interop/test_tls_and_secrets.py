"""Issue 11, item 5: TLS and secrets as in OpenStack.

- `[oslo_messaging_rabbit] ssl = true` with a plain `rabbit://` URL really uses TLS (the broker
  says so: `rabbitmqctl list_connections ssl`), for the agent and for aosctl;
- the broker password need not be on a command line (config file or AOS_DEFAULT_TRANSPORT_URL),
  and the programs say so when it is, or when the file holding it is readable by others.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from test_controller_e2e import VG as CVG
from test_controller_e2e import (
    Cluster,
    ctl,  # noqa: F401 - a pytest fixture, found by its name
    remote_error,
    wait_alive,
)

pytestmark = pytest.mark.timeout(180)

VG = "vg1"


def write_conf(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def agent_conf(tmp_path: Path, host: str, url: str, ssl: bool, ca: str) -> str:
    return (f"[DEFAULT]\ntransport_url = {url}\nhost = {host}\n"
            f"[oslo_messaging_rabbit]\nssl = {'true' if ssl else 'false'}\n"
            + (f"ssl_ca_file = {ca}\n" if ssl else "")
            + f"[agent]\nlvm_backend = simulated\nvolume_groups = {VG}\nstate_dir = {tmp_path / host}\n"
            f"simulated_state_file = {tmp_path / 'cluster.json'}\nannounce_interval = 60\n")


def connections(broker_ctl) -> list[dict]:
    """Every AMQP connection: its client's connection_name, port and ssl flag."""
    r = broker_ctl("list_connections", "--formatter", "json", "client_properties", "port", "ssl")
    rows = json.loads(r.stdout)
    out = []
    for row in rows:
        props = row.get("client_properties") or []
        # rabbitmqctl renders the table as [name, type, value] triples (or a dict in newer versions).
        if isinstance(props, dict):
            name = props.get("connection_name")
        else:
            name = next((p[2] for p in props
                         if isinstance(p, list) and len(p) == 3 and p[0] == "connection_name"), None)
        out.append({"name": name, "port": row.get("port"), "ssl": row.get("ssl")})
    return out


def aosctl(swift_bin: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60):
    full = dict(os.environ)
    full.pop("AOS_DEFAULT_TRANSPORT_URL", None)
    full.update(env or {})
    return subprocess.run([str(swift_bin / "aosctl"), *args], capture_output=True, text=True, timeout=timeout, env=full)


def test_ssl_true_with_rabbit_url_is_tls_for_agent_and_aosctl(spawn, swift_bin, tls, tmp_path, broker_ctl):
    port, ca = tls
    host = f"tls-{uuid.uuid4().hex[:8]}"
    # A rabbit:// URL on the TLS listener's port: only ssl = true can make this work.
    url = f"rabbit://guest:guest@localhost:{port}/"
    conf = write_conf(tmp_path / "aos.conf", agent_conf(tmp_path, host, url, ssl=True, ca=ca))
    agent = spawn("aos-agent", "--config", conf, "--host-id", "1", ready=f"READY host={host}", timeout=60)

    mine = [c for c in connections(broker_ctl) if c["name"] == f"aos-agent:{host}"]
    print("broker connections of the agent:", mine)
    assert mine, f"the broker lists no connection named aos-agent:{host}: {connections(broker_ctl)}"
    assert all(c["ssl"] is True and c["port"] == port for c in mine), mine
    assert "warning" not in agent.stderr_text(), agent.stderr_text()  # mode 600, password in the file only

    # aosctl reads the same [oslo_messaging_rabbit] options from the same file.
    r = aosctl(swift_bin, "--config", str(conf), "--json", "--direct", host, "locks", "--timeout", "20")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["host"] == host
    assert "warning" not in r.stderr, r.stderr

    # The same file with ssl = false cannot talk to the TLS port: TLS above was not an accident.
    plain = write_conf(tmp_path / "plain.conf", agent_conf(tmp_path, host, url, ssl=False, ca=ca))
    r = aosctl(swift_bin, "--config", str(plain), "--json", "--direct", host, "locks", "--timeout", "3")
    assert r.returncode != 0 and "cannot reach the message broker" in r.stderr, (r.returncode, r.stderr)


def test_password_from_environment_and_warnings(spawn, swift_bin, amqp_url, tmp_path):
    assert ":guest@" in amqp_url  # the private broker's URL carries a password
    host = f"sec-{uuid.uuid4().hex[:8]}"
    # The file (world-readable, as a careless install would leave it) holds no password: quiet.
    conf_text = agent_conf(tmp_path, host, "rabbit://localhost:1/", ssl=False, ca="")
    conf = write_conf(tmp_path / "nopass.conf", conf_text, mode=0o644)
    agent = spawn("aos-agent", "--config", conf, "--host-id", "1", ready=f"READY host={host}", timeout=60,
                  env={"AOS_DEFAULT_TRANSPORT_URL": amqp_url})
    assert "warning" not in agent.stderr_text(), agent.stderr_text()
    r = aosctl(swift_bin, "--config", str(conf), "--json", "--direct", host, "locks", "--timeout", "20",
               env={"AOS_DEFAULT_TRANSPORT_URL": amqp_url})
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr, r.stderr

    # The password on the command line: a warning that names the way out, never the password.
    r = aosctl(swift_bin, "--config", str(conf), "--url", amqp_url, "--json", "--direct", host, "locks",
               "--timeout", "20")
    assert r.returncode == 0, r.stderr
    assert "aosctl: warning: the broker password is on the command line" in r.stderr, r.stderr
    assert "AOS_DEFAULT_TRANSPORT_URL" in r.stderr and "guest@" not in r.stderr, r.stderr

    # The password in a file that others may read: a warning naming the file and the fix.
    exposed = write_conf(tmp_path / "exposed.conf", agent_conf(tmp_path, host, amqp_url, ssl=False, ca=""), mode=0o644)
    r = aosctl(swift_bin, "--config", str(exposed), "--json", "--direct", host, "locks", "--timeout", "20")
    assert r.returncode == 0, r.stderr
    assert f"configuration file {exposed} holds the broker password" in r.stderr, r.stderr
    assert f"chmod 600 {exposed}" in r.stderr and "mode 0644" in r.stderr, r.stderr
    assert "guest@" not in r.stderr, r.stderr

    # The agent and the controller say the same at startup.
    host2 = f"sec2-{uuid.uuid4().hex[:8]}"
    exposed2 = write_conf(tmp_path / "exposed2.conf", agent_conf(tmp_path, host2, amqp_url, ssl=False, ca=""),
                          mode=0o640)
    agent2 = spawn("aos-agent", "--config", exposed2, "--host-id", "2", ready=f"READY host={host2}", timeout=60)
    assert f"aos-agent: warning: configuration file {exposed2} holds the broker password" in agent2.stderr_text()
    controller = spawn("aos-controller", "--config", exposed2, "--set", f"controller.topic=aos-ctl-{host2}",
                       ready="READY", timeout=60)
    assert (f"aos-controller: warning: configuration file {exposed2} holds the broker password"
            in controller.stderr_text())


# ---- issue 11, item 6: only our LVs, through the controller and aosctl -------------------------


def test_agent_refuses_lvs_outside_lv_name_pattern(spawn, amqp_url, tmp_path, swift_bin, ctl):  # noqa: F811
    c = Cluster(spawn, amqp_url, tmp_path, swift_bin)
    c.start_agent(c.host_a, 1)  # default lv_name_pattern = volume-*
    # The admin's own tool on host b manages every LV of the same (simulated, shared) VG.
    c.conf.write_text("[agent]\nlv_name_pattern = *\n")
    c.start_agent(c.host_b, 2)
    c.conf.write_text("")
    c.start_controller()
    a, b = c.host_a, c.host_b
    wait_alive(ctl, a, b)
    r = c.aosctl("--json", "--direct", b, "volume", "create", "scratch", "--size", "1G", "--vg", CVG)
    assert r.returncode == 0, r.stderr

    # Python (oslo.messaging) through the controller: a named refusal, nothing done.
    e = remote_error(lambda: ctl("activate_volume", vg=CVG, name="scratch", host=a, mode="exclusive"))
    assert e.exc_type == "LvNotManaged", e
    assert "lv_name_pattern" in e.value and "volume-*" in e.value, e.value
    # aosctl, straight to the agent: the same code; read-only calls still see the LV.
    r = c.aosctl("--json", "--direct", a, "volume", "delete", "scratch", "--vg", CVG)
    assert r.returncode != 0 and json.loads(r.stdout)["error"]["code"] == "lv_not_managed", (r.stdout, r.stderr)
    r = c.aosctl("--json", "--direct", a, "volume", "show", "scratch", "--vg", CVG)
    assert r.returncode == 0 and json.loads(r.stdout)["active"] is False, (r.stdout, r.stderr)
    # A Cinder-named volume goes through on the same agent.
    r = c.aosctl("--json", "--direct", a, "volume", "create", "volume-ours", "--size", "1G", "--vg", CVG)
    assert r.returncode == 0, r.stderr
