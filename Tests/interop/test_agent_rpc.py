"""The node agent (aos-agent) over RPC, driven by the real oslo.messaging (issue 3).

Two agent processes ("host A" and "host B") use the simulated LVM backend on one shared
state file, i.e. one simulated shared VG with lvmlockd's lock rules across the two processes.
"""

from __future__ import annotations

import json
import queue
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import kombu
import oslo_messaging
import pytest

from conftest import make_oslo_conf

pytestmark = pytest.mark.timeout(180)

VG = "vg1"
GiB = 1 << 30


def agent_args(amqp_url: str, tmp_path: Path, host: str, host_id: int, *extra: str) -> list[str]:
    return [
        "--set", f"DEFAULT.transport_url={amqp_url}",
        "--set", f"DEFAULT.host={host}",
        "--set", "agent.lvm_backend=simulated",
        "--set", f"agent.simulated_state_file={tmp_path / 'cluster.json'}",
        "--set", f"agent.volume_groups={VG}",
        "--set", f"agent.state_dir={tmp_path / host}",
        "--set", "agent.announce_interval=1",
        "--set", "agent.log_level=debug",
        "--host-id", str(host_id),
        *extra,
    ]


@pytest.fixture
def hosts() -> tuple[str, str]:
    # Unique per test: agents of other tests on the same broker must not answer.
    tag = uuid.uuid4().hex[:8]
    return f"host-a-{tag}", f"host-b-{tag}"


@pytest.fixture
def start_agent(spawn, amqp_url, tmp_path):
    def start(host: str, host_id: int, *extra: str):
        return spawn("aos-agent", *agent_args(amqp_url, tmp_path, host, host_id, *extra),
                     ready=f"READY host={host}", timeout=60)
    return start


@pytest.fixture
def agents(start_agent, hosts):
    a, b = hosts
    return start_agent(a, 1), start_agent(b, 2)


@pytest.fixture
def client_for(oslo_transport):
    def make(host: str, timeout: float = 20):
        target = oslo_messaging.Target(topic="aos-agent", server=host, version="1.0")
        return oslo_messaging.get_rpc_client(oslo_transport, target, timeout=timeout)
    return make


def remote_error(fn, *args, **kwargs) -> oslo_messaging.RemoteError:
    with pytest.raises(oslo_messaging.RemoteError) as info:
        fn(*args, **kwargs)
    return info.value


# ---- every operation, two hosts ----------------------------------------------------------

def test_two_agents_share_one_vg(agents, hosts, client_for):
    host_a, host_b = hosts
    a, b = client_for(host_a), client_for(host_b)
    lv = f"volume-{uuid.uuid4()}"

    r = a.call({}, "create_lv", vg=VG, name=lv, size_gb=1)
    assert r == {"host": host_a, "vg": VG, "name": lv, "size_bytes": GiB, "changed": True}
    assert a.call({}, "create_lv", vg=VG, name=lv, size_bytes=GiB)["changed"] is False
    err = remote_error(b.call, {}, "create_lv", vg=VG, name=lv, size_gb=2)
    assert err.exc_type == "SizeConflict"

    # B sees the LV A created (one shared VG across two processes); nobody holds it.
    info = b.call({}, "lv_info", vg=VG, name=lv)
    assert info["active"] is False and info["mode"] is None and info["size_bytes"] == GiB

    r = a.call({}, "activate_lv", vg=VG, name=lv, mode="exclusive")
    assert r["changed"] is True and r["mode"] == "exclusive" and r["host"] == host_a
    assert a.call({}, "activate_lv", vg=VG, name=lv, mode="exclusive")["changed"] is False
    err = remote_error(b.call, {}, "activate_lv", vg=VG, name=lv, mode="exclusive")
    assert err.exc_type == "LockedByOtherHost"
    assert lv in err.value and host_b in err.value
    err = remote_error(b.call, {}, "activate_lv", vg=VG, name=lv, mode="shared")
    assert err.exc_type == "LockedByOtherHost"

    assert a.call({}, "deactivate_lv", vg=VG, name=lv)["changed"] is True
    assert a.call({}, "deactivate_lv", vg=VG, name=lv)["changed"] is False
    assert a.call({}, "activate_lv", vg=VG, name=lv, mode="shared")["changed"] is True
    assert b.call({}, "activate_lv", vg=VG, name=lv, mode="shared")["changed"] is True

    # Extend while shared on both: plain is refused, shared_update works; B refreshes.
    err = remote_error(a.call, {}, "extend_lv", vg=VG, name=lv, size_gb=2)
    assert err.exc_type == "IncompatibleLockMode"
    r = a.call({}, "extend_lv", vg=VG, name=lv, size_gb=2, shared_update=True)
    assert r == {"host": host_a, "vg": VG, "name": lv, "size_bytes": 2 * GiB, "changed": True, "refreshed": True}
    assert a.call({}, "extend_lv", vg=VG, name=lv, size_gb=2, shared_update=True)["changed"] is False
    r = b.call({}, "refresh_lv", vg=VG, name=lv)
    assert r["size_bytes"] == 2 * GiB and r["active"] is True
    err = remote_error(a.call, {}, "extend_lv", vg=VG, name=lv, size_gb=1, shared_update=True)
    assert err.exc_type == "SizeConflict"

    # Delete is refused while active anywhere.
    err = remote_error(a.call, {}, "delete_lv", vg=VG, name=lv)
    assert err.exc_type == "Busy" and "deactivate it first" in err.value
    a.call({}, "deactivate_lv", vg=VG, name=lv)
    err = remote_error(a.call, {}, "delete_lv", vg=VG, name=lv)
    assert err.exc_type == "LockedByOtherHost"
    b.call({}, "deactivate_lv", vg=VG, name=lv)
    assert a.call({}, "delete_lv", vg=VG, name=lv, volume_clear="zero", volume_clear_size_mb=1)["changed"] is True
    assert b.call({}, "delete_lv", vg=VG, name=lv)["changed"] is False
    err = remote_error(b.call, {}, "lv_info", vg=VG, name=lv)
    assert err.exc_type == "NotFound"


def test_read_only_operations(agents, hosts, client_for):
    host_a, host_b = hosts
    a = client_for(host_a)
    lv = f"volume-{uuid.uuid4()}"
    a.call({}, "create_lv", vg=VG, name=lv, size_bytes=5_000_000)
    a.call({}, "activate_lv", vg=VG, name=lv, mode="shared")
    try:
        lvs = {x["name"]: x for x in a.call({}, "list_lvs", vg=VG)["lvs"]}
        assert lvs[lv]["mode"] == "shared" and lvs[lv]["active"] is True
        assert lvs[lv]["size_bytes"] == 8 << 20  # whole 4 MiB extents
        vg = a.call({}, "vg_info", vg=VG)
        assert vg["lockspace"] == "started" and vg["size_bytes"] == 100 * GiB
        assert vg["lv_count"] >= 1 and vg["free_bytes"] < vg["size_bytes"]
        assert vg["metadata_area_size_bytes"] > 0 and "metadata_area_free_bytes" in vg
        locks = a.call({}, "lock_status")
        assert locks["host_id"] == 1
        assert [ls["vg"] for ls in locks["lockspaces"]] == [VG]
        assert {"name": lv, "mode": "shared"}.items() <= {k: v for lk in locks["locks"] if lk["name"] == lv
                                                         for k, v in lk.items()}.items()
        h = a.call({}, "health")
        assert h["host"] == host_a and h["host_id"] == 1 and h["ready"] is True
        assert h["vgs"] == {VG: {"lockspace": "started"}}
        assert {"vg": VG, "name": lv, "mode": "shared"} in h["active_lvs"]
        assert h["restore_failures"] == []
    finally:
        a.call({}, "deactivate_lv", vg=VG, name=lv)
        a.call({}, "delete_lv", vg=VG, name=lv)


# ---- bad input ---------------------------------------------------------------------------

BAD_CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("create_lv", {"vg": VG, "name": "--help", "size_gb": 1}, "InvalidArgument"),
    ("create_lv", {"vg": VG, "name": "../x", "size_gb": 1}, "InvalidArgument"),
    ("create_lv", {"vg": VG, "name": "a;b", "size_gb": 1}, "InvalidArgument"),
    ("create_lv", {"vg": VG, "name": "-x", "size_gb": 1}, "InvalidArgument"),
    ("create_lv", {"vg": VG, "name": "", "size_gb": 1}, "InvalidArgument"),
    ("create_lv", {"vg": VG, "name": "x" * 300, "size_gb": 1}, "InvalidArgument"),
    ("create_lv", {"vg": VG, "name": "ok", "size_bytes": 2 ** 62}, "InvalidArgument"),
    ("create_lv", {"vg": VG, "name": "ok", "size_bytes": -1}, "InvalidArgument"),
    ("create_lv", {"vg": VG, "name": "ok", "size_bytes": 0}, "InvalidArgument"),
    ("create_lv", {"vg": VG, "name": "ok", "size_bytes": 1.5}, "InvalidArgument"),
    ("create_lv", {"vg": VG, "name": "ok", "size_gb": "1"}, "InvalidArgument"),
    ("create_lv", {"vg": VG, "name": "ok"}, "InvalidArgument"),
    ("create_lv", {"vg": VG, "name": "ok", "size_gb": 1, "force": True}, "InvalidArgument"),
    ("create_lv", {"vg": "vg-other", "name": "ok", "size_gb": 1}, "UnknownVg"),
    ("create_lv", {"vg": "--help", "name": "ok", "size_gb": 1}, "InvalidArgument"),
    ("activate_lv", {"vg": VG, "name": "ok", "mode": "ex"}, "InvalidArgument"),
    ("activate_lv", {"vg": VG, "name": ["ok"]}, "InvalidArgument"),
    ("delete_lv", {"vg": VG, "name": "ok", "volume_clear": "wipe"}, "InvalidArgument"),
    ("extend_lv", {"vg": VG, "name": "ok", "size_gb": 2, "shared_update": "yes"}, "InvalidArgument"),
    ("list_lvs", {}, "InvalidArgument"),
    ("health", {"verbose": True}, "InvalidArgument"),
]


def test_bad_calls_get_clear_errors(agents, hosts, client_for, tmp_path):
    host_a, _ = hosts
    a = client_for(host_a)
    state = (tmp_path / "cluster.json").read_bytes()
    for method, args, exc_type in BAD_CALLS:
        err = remote_error(a.call, {}, method, **args)
        assert err.exc_type == exc_type, (method, args, err)
        assert err.value, (method, args)
    # Nothing reached the (simulated) LVM: the shared state is byte for byte the same.
    assert (tmp_path / "cluster.json").read_bytes() == state
    with pytest.raises(oslo_messaging.RemoteError) as info:
        a.call({}, "no_such_method")
    assert info.value.exc_type == "NoSuchMethod"
    assert a.call({}, "health")["ready"] is True


def envelope(inner: Any) -> str:
    return json.dumps({"oslo.version": "2.0", "oslo.message": inner if isinstance(inner, str) else json.dumps(inner)})


def test_malformed_messages_do_not_kill_the_agent(agents, hosts, client_for, amqp_url, tmp_path):
    host_a, _ = hosts
    routing_key = f"aos-agent.{host_a}"
    state = (tmp_path / "cluster.json").read_bytes()
    replies: queue.Queue[dict[str, Any]] = queue.Queue()
    reply_q = f"reply_test_{uuid.uuid4().hex}"
    with kombu.Connection(amqp_url) as conn:
        channel = conn.channel()
        q = kombu.Queue(reply_q, exchange=kombu.Exchange(reply_q, type="direct", durable=False, auto_delete=True),
                        routing_key=reply_q, durable=False, auto_delete=True, channel=channel)
        q.declare()
        producer = kombu.Producer(channel)

        def publish(body: str | bytes, content_type: str = "application/json") -> None:
            # A TTL, as oslo's calls carry: a call that changes state must have a deadline.
            producer.publish(body, exchange="openstack", routing_key=routing_key, content_type=content_type,
                             content_encoding="utf-8", serializer=None, mandatory=True, expiration=30)

        def with_reply(inner: dict[str, Any]) -> dict[str, Any]:
            msg_id = uuid.uuid4().hex
            return {**inner, "_msg_id": msg_id, "_reply_q": reply_q, "_unique_id": uuid.uuid4().hex}

        # Dropped (no way to reply): not JSON, not an object, garbage envelope, wrong content type.
        publish(b"\xff\xfe not json at all")
        publish("[1, 2, 3]")
        publish(envelope("{not json"))
        publish(json.dumps({"oslo.version": "9.9", "oslo.message": "{}"}))
        publish("x" * (512 * 1024))
        # Answered with a clear error: the caller can be identified.
        wrong_type = with_reply({"method": "health", "args": {}})
        publish(envelope(wrong_type), content_type="text/plain")
        bad_method = with_reply({"method": 5, "args": {}})
        bad_args = with_reply({"method": "create_lv", "args": ["vg1", "x"]})
        hostile = with_reply({"method": "create_lv", "args": {"vg": VG, "name": "$(reboot)", "size_gb": 1}})
        for inner in (bad_method, bad_args, hostile):
            publish(envelope(inner))

        def on_message(body, message):
            outer = json.loads(body) if isinstance(body, (str, bytes)) else body
            replies.put(json.loads(outer["oslo.message"]))
            message.ack()

        got: dict[str, dict[str, Any]] = {}
        with kombu.Consumer(channel, queues=[q], callbacks=[on_message], accept=["json", "text/plain"]):
            deadline = time.monotonic() + 30
            while len(got) < 4 and time.monotonic() < deadline:
                try:
                    conn.drain_events(timeout=1)
                except TimeoutError:
                    pass
                except OSError:
                    pass
                while not replies.empty():
                    r = replies.get()
                    if r.get("ending"):
                        got[r["_msg_id"]] = r
        names = {wrong_type["_msg_id"]: "wrong_type", bad_method["_msg_id"]: "bad_method",
                 bad_args["_msg_id"]: "bad_args", hostile["_msg_id"]: "hostile"}
        assert sorted(names.get(m, m) for m in got) == sorted(names.values()), got
        for msg_id in (wrong_type["_msg_id"], bad_method["_msg_id"], bad_args["_msg_id"]):
            failure = json.loads(got[msg_id]["failure"])
            assert failure["class"] == "ValueError" and "malformed RPC request" in failure["message"]
        failure = json.loads(got[hostile["_msg_id"]]["failure"])
        assert failure["class"] == "InvalidArgument" and failure["module"] == "aos.exceptions"
        assert failure["kwargs"]["code"] == "invalid_argument" and "$(reboot)" in failure["message"]
        q.delete()
    # Still serving, and nothing reached LVM.
    a = client_for(host_a)
    assert a.call({}, "health")["ready"] is True
    assert (tmp_path / "cluster.json").read_bytes() == state


# ---- deadline ----------------------------------------------------------------------------

def wait_for_stderr(proc, text: str, timeout: float = 30, after: int = 0) -> int:
    """Polls the process's stderr until `text` appears past offset `after`; returns its end offset."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = proc.stderr_text()
        i = log.find(text, after)
        if i >= 0:
            return i + len(text)
        time.sleep(0.02)
    raise AssertionError(f"{text!r} not in stderr within {timeout}s:\n{proc.stderr_text()[-3000:]}")


def test_call_whose_caller_gave_up_is_not_executed(start_agent, hosts, client_for):
    """A request that waited for its LV past the caller's timeout is not executed."""
    host_a, _ = hosts
    # Every simulated LVM command takes 0.5 s here.
    agent = start_agent(host_a, 1, "--set", "agent.simulated_latency_ms=500")
    a = client_for(host_a)
    lv = f"volume-{uuid.uuid4()}"
    a.call({}, "create_lv", vg=VG, name=lv, size_gb=1)
    offset = len(agent.stderr_text())
    # A slow operation holds the LV (lv_info + activate: ~1 s); a call, in the background
    # (casts never change state) ...
    holder = threading.Thread(target=lambda: a.call({}, "activate_lv", vg=VG, name=lv, mode="exclusive"))
    holder.start()
    wait_for_stderr(agent, f"target={VG}/{lv} [AgentCore] running request", after=offset)
    # ... so this call waits for the LV longer than its caller does.
    with pytest.raises(oslo_messaging.MessagingTimeout):
        client_for(host_a, timeout=0.3).call({}, "extend_lv", vg=VG, name=lv, size_gb=2)
    wait_for_stderr(agent, "not executing a request whose caller has given up", after=offset)
    holder.join(timeout=30)
    info = a.call({}, "lv_info", vg=VG, name=lv)
    assert info["size_bytes"] == GiB and info["mode"] == "exclusive"


# ---- start-up pages ([agent] release_startup_pages) --------------------------------------

RELEASED = "released the start-up pages of the executable"
KEPT = "start-up pages kept resident ([agent] release_startup_pages = false)"


def test_agent_serves_after_releasing_its_start_up_pages(start_agent, hosts, client_for):
    """By default the agent pages out its executable's read-only pages once it serves and has
    announced (madvise MADV_PAGEOUT: contents unchanged) and goes on serving: its code comes back."""
    host_a, _ = hosts
    agent = start_agent(host_a, 1)
    wait_for_stderr(agent, RELEASED)
    line = next(x for x in agent.stderr_text().splitlines() if RELEASED in x)
    assert "mappings=" in line and "rss_kb_before=" in line and "rss_kb_after=" in line, line
    assert "=?" not in line, f"RSS unread: {line}"
    a = client_for(host_a)
    lv = f"volume-{uuid.uuid4()}"
    a.call({}, "create_lv", vg=VG, name=lv, size_gb=1)
    a.call({}, "activate_lv", vg=VG, name=lv, mode="exclusive")
    assert a.call({}, "lv_info", vg=VG, name=lv)["mode"] == "exclusive"
    assert a.call({}, "health")["ready"] is True
    assert agent.stderr_text().count(RELEASED) == 1, "released once only"


def test_agent_keeps_its_start_up_pages_when_told(start_agent, hosts, client_for):
    host_a, _ = hosts
    agent = start_agent(host_a, 1, "--set", "agent.release_startup_pages=false")
    # Logged (at debug) where the release would have happened: past that point, it did not.
    wait_for_stderr(agent, KEPT)
    assert client_for(host_a).call({}, "health")["ready"] is True
    assert RELEASED not in agent.stderr_text()


# ---- announcements -----------------------------------------------------------------------

class AnnounceSink:
    def __init__(self) -> None:
        self.reports: queue.Queue[dict[str, Any]] = queue.Queue()

        self.heartbeats: queue.Queue[dict[str, Any]] = queue.Queue()

    def agent_announce(self, ctxt, report, sent_at):
        self.reports.put({"report": report, "sent_at": sent_at})

    def agent_heartbeat(self, ctxt, host, instance_id, report_sent_at, sent_at):
        self.heartbeats.put({"host": host, "instance_id": instance_id, "report_sent_at": report_sent_at,
                             "sent_at": sent_at})


def test_agents_announce_themselves(start_agent, hosts, rabbit_url):
    host_a, _ = hosts
    sink = AnnounceSink()
    conf = make_oslo_conf()
    transport = oslo_messaging.get_rpc_transport(conf, url=rabbit_url)
    server = oslo_messaging.get_rpc_server(
        transport, oslo_messaging.Target(topic="aos-controller", server=f"test-ctl-{uuid.uuid4().hex[:6]}"),
        [sink])
    server.start()
    try:
        start_agent(host_a, 1)
        deadline = time.monotonic() + 30
        seen = []
        full_sent = set()  # every full report of host_a, ready or not (heartbeats may name any)
        while time.monotonic() < deadline and len(seen) < 2:
            try:
                msg = sink.reports.get(timeout=1)
            except queue.Empty:
                continue
            if msg["report"]["host"] == host_a:
                full_sent.add(msg["sent_at"])
                if msg["report"]["ready"]:
                    seen.append(msg)
        assert len(seen) >= 2, "no periodic announcements"
        report = seen[0]["report"]
        assert report["host_id"] == 1 and report["vgs"] == {VG: {"lockspace": "started"}}
        assert report["active_lvs"] == [] and report["restore_failures"] == []
        assert abs(seen[0]["sent_at"] - time.time()) < 30
        # Between full reports (the report is unchanged), heartbeats name the last full one.
        beat = sink.heartbeats.get(timeout=10)
        while beat["host"] != host_a:
            beat = sink.heartbeats.get(timeout=10)
        # The full reports received so far (a heartbeat leaves after the report it names).
        while not sink.reports.empty():
            m = sink.reports.get_nowait()
            if m["report"]["host"] == host_a:
                full_sent.add(m["sent_at"])
        assert beat["instance_id"] == report["instance_id"], beat
        assert beat["report_sent_at"] in full_sent and beat["sent_at"] > beat["report_sent_at"], (beat, full_sent)
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


# ---- restart and restore -----------------------------------------------------------------

def test_sigterm_and_restart_restore_activations(start_agent, hosts, client_for):
    host_a, host_b = hosts
    agent_a = start_agent(host_a, 1)
    start_agent(host_b, 2)
    a, b = client_for(host_a), client_for(host_b)
    ex_lv, sh_lv = f"volume-ex-{uuid.uuid4().hex[:8]}", f"volume-sh-{uuid.uuid4().hex[:8]}"
    a.call({}, "create_lv", vg=VG, name=ex_lv, size_gb=1)
    a.call({}, "create_lv", vg=VG, name=sh_lv, size_gb=1)
    a.call({}, "activate_lv", vg=VG, name=ex_lv, mode="exclusive")
    a.call({}, "activate_lv", vg=VG, name=sh_lv, mode="shared")

    # Graceful stop: exit 0, LVs left as they are.
    agent_a.signal(signal.SIGTERM)
    assert agent_a.proc.wait(timeout=20) == 0
    assert "LVs are left as they are" in agent_a.stderr_text()
    err = remote_error(b.call, {}, "activate_lv", vg=VG, name=ex_lv, mode="exclusive")
    assert err.exc_type == "LockedByOtherHost"

    # Restart as after a reboot (the simulated host loses its devices and locks first):
    # the agent re-activates both before it reports ready.
    agent_a2 = start_agent(host_a, 1, "--simulate-reboot")
    h = a.call({}, "health")
    assert h["ready"] is True
    assert sorted((x["name"], x["mode"]) for x in h["active_lvs"]) == sorted([(ex_lv, "exclusive"), (sh_lv, "shared")])
    assert h["restore_failures"] == []
    assert "restored activation" in agent_a2.stderr_text()
    locks = {lk["name"]: lk["mode"] for lk in a.call({}, "lock_status")["locks"]}
    assert locks == {ex_lv: "exclusive", sh_lv: "shared"}
    err = remote_error(b.call, {}, "activate_lv", vg=VG, name=ex_lv, mode="shared")
    assert err.exc_type == "LockedByOtherHost"
    assert b.call({}, "activate_lv", vg=VG, name=sh_lv, mode="shared")["changed"] is True


def test_bad_configuration_and_host_id_are_startup_errors(swift_bin, amqp_url, tmp_path):
    import subprocess

    exe = str(swift_bin / "aos-agent")
    r = subprocess.run([exe, "--set", "agent.no_such_option=1"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "no_such_option" in r.stderr
    lvmlocal = tmp_path / "lvmlocal.conf"
    lvmlocal.write_text("local {\n    host_id = 4000\n}\n")
    r = subprocess.run([exe, "--set", f"DEFAULT.transport_url={amqp_url}", "--set", f"agent.volume_groups={VG}",
                        "--set", f"agent.lvmlocal_conf={lvmlocal}", "--set", f"agent.state_dir={tmp_path}/s"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "4000" in r.stderr and "out of range" in r.stderr
    lvmlocal.write_text("local {\n}\n")
    r = subprocess.run([exe, "--set", f"agent.volume_groups={VG}", "--set", f"agent.lvmlocal_conf={lvmlocal}"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "no sanlock host_id" in r.stderr
    r = subprocess.run([exe, "--set", f"agent.volume_groups={VG}", "--host-id", "3"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "--host-id is only for the simulated backend" in r.stderr
    r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith("aos-agent ")


def test_sd_notify_ready_after_restore(start_agent, hosts, tmp_path, spawn, amqp_url):
    """With $NOTIFY_SOCKET set (Type=notify) the agent sends STATUS= lines and READY=1."""
    import socket as socketlib

    host_a, _ = hosts
    path = str(tmp_path / "notify.sock")
    sock = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(30)
    try:
        spawn("aos-agent", *agent_args(amqp_url, tmp_path, host_a, 1), ready=f"READY host={host_a}", timeout=60,
              env={"NOTIFY_SOCKET": path})
        messages = []
        while not any(m.startswith("READY=1") for m in messages):
            messages.append(sock.recv(4096).decode())
        assert any("STATUS=starting the lockspace of vg1" in m for m in messages), messages
        ready = next(m for m in messages if m.startswith("READY=1"))
        # READY=1 follows the boot summary, i.e. lock start and restore are done.
        assert messages.index(ready) > next(i for i, m in enumerate(messages) if m.startswith("STATUS=ready:"))
        sock.settimeout(10)
        assert sock.recv(4096).decode() == "STATUS=serving"
    finally:
        sock.close()


def test_request_for_an_earlier_agent_run_is_refused(agents, hosts, client_for):
    # The controller names the agent run (instance_id from its announcements) it means;
    # a request queued for a previous run must not execute after its caller was told
    # the agent was unavailable.
    a, _ = hosts
    client = client_for(a)
    vg = client.call({}, "health")["vgs"]
    vg = sorted(vg)[0]
    instance = client.call({}, "health")["instance_id"]
    err = remote_error(client.call, {"aos_agent_instance": "0" * 32}, "create_lv", vg=vg, name="volume-stale-req",
                       size_bytes=4 << 20)
    assert err.exc_type == "AgentRestarted", err
    names = [lv["name"] for lv in client.call({}, "list_lvs", vg=vg)["lvs"]]
    assert "volume-stale-req" not in names
    r = client.call({"aos_agent_instance": instance}, "create_lv", vg=vg, name="volume-fresh-req", size_bytes=4 << 20)
    assert r["changed"] is True
