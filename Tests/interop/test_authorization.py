"""Authorization with per-role broker users and enforcement on (issue 11, docs/security.md).

A vhost of its own on the private broker, set up by `aosctl broker-setup` (the users and
permissions an operator would create), a controller as `aos-controller`, two simulated agents
as `aos-agent-<host>`, the Python driver path signing with an Ed25519 key, and aosctl as
`aos-admin`. Every allowed path must work; every forbidden path must be refused by the broker
(permissions) or by the servers (identity and policy), and change nothing.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import amqp
import oslo_messaging
import pytest

from conftest import REPO_ROOT, controller_args, make_oslo_conf, start_cluster, start_sim_agent
from test_controller_e2e import wait_for

pytestmark = pytest.mark.timeout(240)

VG = "vg0"
EXCHANGE = "openstack"


def load_signing() -> Any:
    """The driver's signer, loaded from its file (the package itself imports cinder)."""
    path = REPO_ROOT / "deploy" / "cinder" / "cinder_sharedlvm_driver" / "signing.py"
    spec = importlib.util.spec_from_file_location("aos_signing", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


signing = load_signing()


class Secured:
    """The vhost, users, passwords and keys, made once per module (broker users are global)."""

    def __init__(self, broker_ctl, amqp_url: str, tmp: Path, swift_bin: Path) -> None:
        tag = uuid.uuid4().hex[:8]
        self.vhost = f"aos-authz-{tag}"
        self.host_a, self.host_b = f"na-{tag}", f"nb-{tag}"
        self.hostport = amqp_url.split("@", 1)[1].split("/", 1)[0]
        self.passwords = tmp / "passwords"
        self.passwords.mkdir()
        setup = subprocess.run(
            [str(swift_bin / "aosctl"), "broker-setup", "--hosts", f"{self.host_a},{self.host_b}",
             "--vhost", self.vhost, "--password-dir", str(self.passwords), "--json"],
            capture_output=True, text=True, timeout=30, check=True)
        for argv in json.loads(setup.stdout):
            if argv[0] == "add_user" and broker_ctl("list_users", "--silent").stdout.count(f"{argv[1]}\t"):
                argv = ["change_password", *argv[1:]]  # another module made the user
            broker_ctl(*argv)
        self.driver_signer = signing.RequestSigner.generate()
        self.admin_signer = signing.RequestSigner.generate()
        self.conf = tmp / "aos.conf"
        self.conf.write_text(
            "[auth]\nenforce = true\n"
            f"driver_public_keys = {self.driver_signer.public_key}\n"
            f"admin_public_keys = {self.admin_signer.public_key}\n")
        os.chmod(self.conf, 0o600)


@pytest.fixture(scope="module")
def secured(broker_ctl, amqp_url, tmp_path_factory, swift_bin) -> Secured:
    return Secured(broker_ctl, amqp_url, tmp_path_factory.mktemp("authz"), swift_bin)


class Deployment:
    """The processes of one secured cluster, each with its own role's credentials."""

    def __init__(self, secured: Secured, spawn, tmp_path: Path, swift_bin: Path) -> None:
        self.s = secured
        self.vhost, self.hostport, self.passwords = secured.vhost, secured.hostport, secured.passwords
        self.host_a, self.host_b = secured.host_a, secured.host_b
        self.driver_signer, self.admin_signer, self.conf = secured.driver_signer, secured.admin_signer, secured.conf
        self.tmp = tmp_path
        self.swift_bin = swift_bin
        self.spawn = spawn
        self.agents: dict[str, Any] = {}

    def password(self, user: str) -> str:
        return (self.passwords / user).read_text().strip()

    def url(self, user: str, scheme: str = "amqp") -> str:
        return f"{scheme}://{user}:{self.password(user)}@{self.hostport}/{self.vhost}"

    def start_agent(self, host: str, host_id: int) -> Any:
        proc = start_sim_agent(self.spawn, self.conf, self.tmp, host, host_id, VG, "--set", "auth.enforce=true",
                               env={"AOS_DEFAULT_TRANSPORT_URL": self.url(f"aos-agent-{host}")})
        self.agents[host] = proc
        return proc

    def start_controller(self) -> Any:
        self.controller = self.spawn(
            "aos-controller", "--config", self.conf,
            *controller_args("ctl-authz"),
            "--set", "auth.enforce=true",
            env={"AOS_DEFAULT_TRANSPORT_URL": self.url("aos-controller")},
            ready="READY", timeout=30)
        return self.controller

    # ---- callers ------------------------------------------------------------------------

    def oslo_call(self, user: str, topic: str, method: str, *, server: str | None = None,
                  signer: Any = None, timeout: float = 20, **kwargs: Any) -> Any:
        transport = oslo_messaging.get_rpc_transport(make_oslo_conf(), url=self.url(user, "rabbit"))
        try:
            target = oslo_messaging.Target(exchange=EXCHANGE, topic=topic, server=server, version="1.0")
            client = oslo_messaging.get_rpc_client(transport, target, timeout=timeout)
            ctxt: dict[str, Any] = {"request_id": f"req-{uuid.uuid4()}"}
            if signer is not None:
                routing_key = f"{topic}.{server}" if server else topic
                ctxt[signing.CONTEXT_KEY] = signer.sign(routing_key, method, kwargs, version="1.0")
            return client.call(ctxt, method, **kwargs)
        finally:
            transport.cleanup()

    def driver(self, method: str, **kwargs: Any) -> Any:
        """The Cinder driver's path: oslo.messaging as aos-driver, signed with the driver key."""
        return self.oslo_call("aos-driver", "aos-controller", method, signer=self.driver_signer, **kwargs)

    def aosctl(self, *args: str, user: str = "aos-admin") -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, AOS_DEFAULT_TRANSPORT_URL=self.url(user))
        return subprocess.run([str(self.swift_bin / "aosctl"), "--config", str(self.conf), *args],
                              capture_output=True, text=True, timeout=60, env=env)

    def raw(self, user: str) -> amqp.Connection:
        """A py-amqp connection as `user`, with publisher confirms: a refused publish raises."""
        conn = amqp.Connection(host=self.hostport, userid=user, password=self.password(user),
                               virtual_host=self.vhost, confirm_publish=True)
        conn.connect()
        return conn


@pytest.fixture
def dep(secured, spawn, tmp_path, swift_bin) -> Deployment:
    d = start_cluster(Deployment(secured, spawn, tmp_path, swift_bin))
    def both_alive() -> bool:
        status = {a["host"]: a["status"] for a in d.driver("list_agents")["agents"]}
        return status.get(d.host_a) == status.get(d.host_b) == "alive"
    wait_for(both_alive, what="both agents alive")
    return d


def refused(fn: Callable[[], Any]) -> oslo_messaging.RemoteError:
    with pytest.raises(oslo_messaging.RemoteError) as info:
        fn()
    assert info.value.exc_type == "NotAuthorized", info.value
    return info.value


def request(method: str, args: dict[str, Any], *, reply_q: str | None = None,
            context: dict[str, Any] | None = None) -> bytes:
    inner: dict[str, Any] = {"method": method, "args": args, "version": "1.0",
                             "_unique_id": uuid.uuid4().hex}
    if reply_q:
        inner.update({"_msg_id": uuid.uuid4().hex, "_reply_q": reply_q, "_timeout": None})
    for k, v in (context or {}).items():
        inner[f"_context_{k}"] = v
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(inner)}).encode()


def publish(conn: amqp.Connection, body: bytes, *, exchange: str, routing_key: str, user: str,
            expiration_ms: int | None = 30_000) -> None:
    ch = conn.channel()
    props: dict[str, Any] = {"content_type": "application/json", "content_encoding": "utf-8", "user_id": user}
    if expiration_ms is not None:
        props["expiration"] = str(expiration_ms)
    ch.basic_publish(amqp.Message(body, **props), exchange=exchange, routing_key=routing_key)


def reply_queue(dep: Deployment) -> tuple[amqp.Connection, Any, str]:
    """A reply queue of the admin's, to collect the servers' refusals of others' requests."""
    conn = dep.raw("aos-admin")
    ch = conn.channel()
    name = f"reply_{uuid.uuid4().hex}"
    ch.queue_declare(name, auto_delete=True)
    return conn, ch, name


def next_reply(ch: Any, queue: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = ch.basic_get(queue, no_ack=True)
        if msg is not None:
            return json.loads(json.loads(msg.body)["oslo.message"])
        time.sleep(0.05)  # polling interval, not synchronisation
    raise AssertionError(f"no reply in {queue} within {timeout}s")


def close(conn: amqp.Connection) -> None:
    try:
        conn.close()
    except Exception:  # a connection whose channel the broker closed may already be gone
        pass


def lv_state(dep: Deployment, name: str) -> Any:
    return dep.driver("get_volume", vg=VG, name=name)


# ---- allowed paths -------------------------------------------------------------------------


def test_driver_admin_and_agents_work_with_their_own_credentials(dep: Deployment) -> None:
    name = f"volume-{uuid.uuid4()}"
    dep.driver("create_volume", vg=VG, name=name, size_gb=1)
    dep.driver("activate_volume", vg=VG, name=name, host=dep.host_a, mode="exclusive")
    assert {(a["host"], a["mode"]) for a in lv_state(dep, name)["active_on"]} == {(dep.host_a, "exclusive")}

    r = dep.aosctl("--json", "agents")
    assert r.returncode == 0, r.stderr
    assert {a["host"] for a in json.loads(r.stdout)["agents"]} >= {dep.host_a, dep.host_b}
    r = dep.aosctl("--json", "--direct", dep.host_a, "volume", "deactivate", name, "--vg", VG)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: not lv_state(dep, name)["active_on"], what="volume inactive")

    # An operator's Python tool signs with an admin key and may call an agent directly.
    health = dep.oslo_call("aos-admin", "aos-agent", "health", server=dep.host_a, signer=dep.admin_signer)
    assert health["host"] == dep.host_a
    dep.driver("delete_volume", vg=VG, name=name, volume_clear="none")


# ---- forbidden paths -----------------------------------------------------------------------


def test_unsigned_or_wrongly_signed_driver_requests_are_refused(dep: Deployment) -> None:
    e = refused(lambda: dep.oslo_call("aos-driver", "aos-controller", "list_agents"))
    assert "unauthenticated" in e.value
    stranger = signing.RequestSigner.generate()
    refused(lambda: dep.oslo_call("aos-driver", "aos-controller", "list_agents", signer=stranger))
    # A signature made for another method does not carry over.
    sig = dep.driver_signer.sign("aos-controller", "list_agents", {}, version="1.0")
    transport = oslo_messaging.get_rpc_transport(make_oslo_conf(), url=dep.url("aos-driver", "rabbit"))
    try:
        client = oslo_messaging.get_rpc_client(
            transport, oslo_messaging.Target(exchange=EXCHANGE, topic="aos-controller", version="1.0"), timeout=20)
        e = refused(lambda: client.call({signing.CONTEXT_KEY: sig}, "pool_stats", vg=VG))
        assert "does not match" in e.value
        # Replaying a valid signature: the nonce was used.
        client.call({signing.CONTEXT_KEY: sig}, "list_agents")
        e = refused(lambda: client.call({signing.CONTEXT_KEY: sig}, "list_agents"))
        assert "replayed" in e.value
    finally:
        transport.cleanup()


def test_the_driver_cannot_command_an_agent(dep: Deployment) -> None:
    name = f"volume-{uuid.uuid4()}"
    dep.driver("create_volume", vg=VG, name=name, size_gb=1)
    # Through the broker: aos-driver may publish to the controller's topic only.
    conn = dep.raw("aos-driver")
    with pytest.raises(amqp.exceptions.AccessRefused):
        publish(conn, request("delete_lv", {"vg": VG, "name": name}), exchange=EXCHANGE,
                routing_key=f"aos-agent.{dep.host_a}", user="aos-driver")
    close(conn)
    # Signed with the driver's key, over a transport the broker lets through: the agent refuses.
    e = refused(lambda: dep.oslo_call("aos-admin", "aos-agent", "delete_lv", server=dep.host_a,
                                      signer=dep.driver_signer, vg=VG, name=name))
    assert "driver" in e.value
    assert lv_state(dep, name)["name"] == name


def test_only_the_controller_may_release_an_activation(dep: Deployment) -> None:
    """release_lv (evacuate) speaks for another host: even the admin's signed call is refused."""
    name = f"volume-{uuid.uuid4()}"
    dep.driver("create_volume", vg=VG, name=name, size_gb=1)
    e = refused(lambda: dep.oslo_call("aos-admin", "aos-agent", "release_lv", server=dep.host_a,
                                      signer=dep.admin_signer, vg=VG, name=name, host=dep.host_b))
    assert "release_lv" in e.value, e.value
    e = refused(lambda: dep.oslo_call("aos-admin", "aos-agent", "release_lv", server=dep.host_a,
                                      signer=dep.driver_signer, vg=VG, name=name, host=dep.host_b))
    dep.driver("delete_volume", vg=VG, name=name, volume_clear="none")


def test_an_agent_cannot_command_another_agent_or_the_controller(dep: Deployment) -> None:
    name = f"volume-{uuid.uuid4()}"
    dep.driver("create_volume", vg=VG, name=name, size_gb=1)
    dep.driver("activate_volume", vg=VG, name=name, host=dep.host_b, mode="exclusive")
    user = f"aos-agent-{dep.host_a}"
    # The broker: an agent has no write permission on the control exchange.
    conn = dep.raw(user)
    with pytest.raises(amqp.exceptions.AccessRefused):
        publish(conn, request("deactivate_lv", {"vg": VG, "name": name}), exchange=EXCHANGE,
                routing_key=f"aos-agent.{dep.host_b}", user=user)
    close(conn)
    # The default exchange reaches any queue by name (replies need it): the servers refuse.
    rconn, rch, rq = reply_queue(dep)
    try:
        conn = dep.raw(user)
        publish(conn, request("deactivate_lv", {"vg": VG, "name": name}, reply_q=rq), exchange="",
                routing_key=f"aos-agent.{dep.host_b}", user=user)
        reply = next_reply(rch, rq)
        assert "NotAuthorized" in (reply["failure"] or ""), reply
        publish(conn, request("delete_volume", {"vg": VG, "name": name}, reply_q=rq), exchange="",
                routing_key="aos-controller", user=user)
        reply = next_reply(rch, rq)
        assert "NotAuthorized" in (reply["failure"] or ""), reply
        close(conn)
    finally:
        close(rconn)
    assert {(a["host"], a["mode"]) for a in lv_state(dep, name)["active_on"]} == {(dep.host_b, "exclusive")}


def test_casts_and_fanout_never_mutate_even_from_the_admin(dep: Deployment) -> None:
    name = f"volume-{uuid.uuid4()}"
    dep.driver("create_volume", vg=VG, name=name, size_gb=1)
    dep.driver("activate_volume", vg=VG, name=name, host=dep.host_a, mode="exclusive")
    conn = dep.raw("aos-admin")
    for exchange, key in ((EXCHANGE, f"aos-agent.{dep.host_a}"), ("aos-agent_fanout", "aos-agent")):
        publish(conn, request("deactivate_lv", {"vg": VG, "name": name}), exchange=exchange, routing_key=key,
                user="aos-admin", expiration_ms=None)
    close(conn)
    agent = dep.agents[dep.host_a]
    wait_for(lambda: agent.stderr_text().count("refused RPC request") >= 2, what="both casts refused")
    assert {(a["host"], a["mode"]) for a in lv_state(dep, name)["active_on"]} == {(dep.host_a, "exclusive")}


def test_forged_and_replayed_announcements_are_refused(dep: Deployment) -> None:
    before = {a["host"]: a for a in dep.driver("list_agents")["agents"]}
    user = f"aos-agent-{dep.host_a}"
    conn = dep.raw(user)
    report = {"host": dep.host_b, "host_id": 2, "ready": False, "instance_id": "forged",
              "vgs": {VG: {"lockspace": "lost"}}, "active_lvs": []}
    publish(conn, request("agent_announce", {"report": report, "sent_at": time.time()}),
            exchange="aos-controller_fanout", routing_key="aos-controller", user=user, expiration_ms=None)
    own = dict(report, host=dep.host_a, instance_id="replayed")
    publish(conn, request("agent_announce", {"report": own, "sent_at": time.time() + 86_400}),
            exchange="aos-controller_fanout", routing_key="aos-controller", user=user, expiration_ms=None)
    close(conn)
    ctl = dep.controller
    wait_for(lambda: "may announce only its own host" in ctl.stderr_text(), what="forged announcement refused")
    wait_for(lambda: "sent_at is" in ctl.stderr_text(), what="future announcement refused")
    after = {a["host"]: a for a in dep.driver("list_agents")["agents"]}
    for h in (dep.host_a, dep.host_b):
        assert after[h]["status"] == "alive"
        assert after[h].get("vgs") == before[h].get("vgs")
    # Requests still reach both agents (neither was locked out).
    for h in (dep.host_a, dep.host_b):
        assert dep.driver("lock_status", host=h)


def test_keys_from_aosctl_keygen_verify_in_python() -> None:
    """The key file format is shared: aosctl writes it, Python signs with it, Swift verifies."""
    key = signing.RequestSigner.generate()
    raw = base64.b64decode(key.public_key)
    assert len(raw) == 32
    doc = signing.signed_bytes("t", "m", None, "1.0", 5, "ab", {"b": 1, "a": "é"})
    assert doc == b'["aos-rpc-sig-v1", "t", "m", null, "1.0", 5, "ab", {"a": "\\u00e9", "b": 1}]'
