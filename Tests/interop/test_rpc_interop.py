"""Wire compatibility between the Swift RPC layer and the real oslo.messaging (issue 2)."""

from __future__ import annotations

import time
import uuid

import oslo_messaging
import pytest

from conftest import make_oslo_conf
from peers import READY, SwiftClientPeer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def swift_server(spawn, amqp_url, unique_topic):
    return spawn("aos-rpc-peer", "serve", "--url", amqp_url, "--topic", unique_topic,
                 "--server", "swift-peer", ready=READY)


@pytest.fixture
def py_client(oslo_transport, unique_topic, swift_server):
    return oslo_messaging.get_rpc_client(oslo_transport, oslo_messaging.Target(topic=unique_topic), timeout=10)


@pytest.fixture
def swift_client(swift_bin, amqp_url, tmp_path):
    peer = SwiftClientPeer(swift_bin / "aos-rpc-peer", amqp_url, tmp_path / "swift-client.stderr")
    yield peer
    peer.stop()


# ---- Python caller -> Swift server ---------------------------------------------------------

def test_python_call_gets_swift_result(py_client):
    args = {"x": 1, "s": "hi ü", "l": [1, 2], "d": {"k": None}, "f": 1.5, "b": True}
    assert py_client.call({"user_id": "u1"}, "echo", **args) == args


def test_python_call_carries_context(py_client):
    ctx = {"user_id": "u1", "project_id": "p1", "request_id": "req-abc"}
    assert py_client.call(ctx, "context") == ctx


def test_directed_call_to_named_server(oslo_transport, unique_topic, swift_server):
    client = oslo_messaging.get_rpc_client(
        oslo_transport, oslo_messaging.Target(topic=unique_topic, server="swift-peer"), timeout=10)
    assert client.call({}, "ping") == "pong"


def test_swift_builtin_failure_arrives_as_python_exception(py_client):
    with pytest.raises(ValueError) as info:
        py_client.call({}, "fail", message="boom")
    assert str(info.value).startswith("boom")


def test_swift_custom_failure_arrives_as_remote_error(py_client):
    with pytest.raises(oslo_messaging.RemoteError) as info:
        py_client.call({}, "fail", message="LV locked by other host: vol/lv1", module="aos.exceptions",
                       code="locked_by_other_host", **{"class": "LockedByOtherHost"})
    assert info.value.exc_type == "LockedByOtherHost"
    assert info.value.value == "LV locked by other host: vol/lv1"


def test_unknown_method_is_no_such_method(py_client):
    with pytest.raises(oslo_messaging.RemoteError) as info:
        py_client.call({}, "nosuch")
    assert info.value.exc_type == "NoSuchMethod"


def test_versioned_namespaced_dispatch(py_client):
    assert py_client.prepare(namespace="ns2", version="2.1").call({}, "v2method", x=7) == {"v2": {"x": 7}}
    with pytest.raises(oslo_messaging.RemoteError) as info:
        py_client.prepare(namespace="ns2", version="2.9").call({}, "v2method", x=7)
    assert info.value.exc_type == "UnsupportedVersion"


def test_python_cast_and_fanout_reach_swift(py_client):
    py_client.cast({}, "record", z=3)
    py_client.prepare(fanout=True).cast({}, "record", z=5)
    # A call queued behind the casts on the same server: both casts are in by then
    # for the direct one; the fanout copy travels another queue, so poll with a bound.
    deadline = time.monotonic() + 10
    while True:
        got = py_client.call({}, "recorded")
        if {"z": 3} in got and {"z": 5} in got:
            break
        assert time.monotonic() < deadline, f"casts not seen, got {got}"


def test_call_monitor_heartbeats_keep_slow_call_alive(py_client):
    # Monitor timeout 2 s, method takes 4 s: only the server's heartbeats save the call.
    started = time.monotonic()
    result = py_client.prepare(call_monitor_timeout=2, timeout=15).call({}, "sleep", secs=4)
    assert result == "slept 4.0"
    assert time.monotonic() - started >= 4


def test_python_call_to_missing_server_times_out(oslo_transport, unique_topic):
    client = oslo_messaging.get_rpc_client(
        oslo_transport, oslo_messaging.Target(topic=unique_topic, server="nobody"), timeout=2)
    with pytest.raises(oslo_messaging.MessagingTimeout):
        client.call({}, "ping")


# ---- Swift caller -> Python oslo.messaging server -----------------------------------------

class PyEndpoint:
    target = oslo_messaging.Target(version="1.3")

    def add(self, ctxt, a, b):
        return a + b

    def explode(self, ctxt, message):
        raise KeyError(message)

    def slow(self, ctxt, secs):
        time.sleep(secs)
        return "done"


@pytest.fixture
def python_server(unique_topic, rabbit_url):
    conf = make_oslo_conf()
    transport = oslo_messaging.get_rpc_transport(conf, url=rabbit_url)
    server = oslo_messaging.get_rpc_server(
        transport, oslo_messaging.Target(topic=unique_topic, server="py-peer"), [PyEndpoint()])
    server.start()
    yield unique_topic
    server.stop()
    server.wait()
    transport.cleanup()


def test_swift_call_gets_python_result(swift_client, python_server):
    r = swift_client.request(op="call", topic=python_server, method="add", args={"a": 2, "b": 40}, timeout=10)
    assert r == {**r, "ok": True, "result": 42}
    r = swift_client.request(op="call", topic=python_server, server="py-peer", method="add",
                             args={"a": "x", "b": "y"}, timeout=10, version="1.2")
    assert r["ok"] and r["result"] == "xy"


def test_swift_call_gets_python_failure(swift_client, python_server):
    r = swift_client.request(op="call", topic=python_server, method="explode", args={"message": "nope"}, timeout=10)
    assert not r["ok"]
    assert (r["error"], r["class"], r["module"]) == ("remote", "KeyError", "builtins")
    assert "nope" in r["remote_message"]


def test_swift_call_to_missing_server_fails_fast(swift_client):
    topic = f"nobody-{uuid.uuid4().hex[:8]}"
    r = swift_client.request(op="call", topic=topic, method="ping", timeout=10)
    assert r["error"] == "undeliverable", r
    assert r["elapsed"] < 2, r  # mandatory publish: basic.return, not the 10 s timeout


def test_swift_call_times_out_when_server_is_silent(swift_client, swift_server, unique_topic):
    r = swift_client.request(op="call", topic=unique_topic, method="sleep", args={"secs": 5}, timeout=1)
    assert r["error"] == "timeout", r


def test_swift_to_swift_with_monitor(swift_client, swift_server, unique_topic):
    r = swift_client.request(op="call", topic=unique_topic, method="sleep", args={"secs": 3}, timeout=15, monitor=2)
    assert r["ok"] and r["result"] == "slept 3.0", r


def test_swift_call_honours_python_heartbeats(swift_client, python_server):
    # The Python server heartbeats every 1 s when asked (_timeout=2); the 4 s
    # method outlives the 2 s monitor only if the Swift client resets it on each.
    r = swift_client.request(op="call", topic=python_server, method="slow", args={"secs": 4}, timeout=15, monitor=2)
    assert r["ok"] and r["result"] == "done", r
    assert r["elapsed"] >= 4


def test_swift_cast_and_fanout_reach_python_and_swift(swift_client, swift_server, unique_topic, oslo_transport):
    assert swift_client.request(op="cast", topic=unique_topic, method="record", args={"n": 1})["ok"]
    assert swift_client.request(op="fanout", topic=unique_topic, method="record", args={"n": 2})["ok"]
    deadline = time.monotonic() + 10
    while True:
        got = swift_client.request(op="call", topic=unique_topic, method="recorded", timeout=5)["result"]
        if {"n": 1} in got and {"n": 2} in got:
            break
        assert time.monotonic() < deadline, got


def test_swift_server_refuses_request_past_callers_absolute_deadline(swift_client, swift_server, unique_topic):
    # The message TTL alone would let it run (10 s); the caller's absolute deadline
    # (context aos_deadline, Unix seconds) is already over, so it must not execute.
    r = swift_client.request(op="call", topic=unique_topic, method="record", args={"late": True},
                             context={"aos_deadline": time.time() - 5}, timeout=2)
    assert r["error"] == "timeout", r
    r = swift_client.request(op="call", topic=unique_topic, method="recorded", timeout=5)
    assert r["ok"] and {"late": True} not in r["result"], r
