"""The driver's call monitor (agent_call_monitor_timeout): a controller that stops in the
middle of the driver's calls is noticed in about that time, not after agent_response_timeout
(2888 s in the seed). The Swift RPC server sends oslo's heartbeats while a call with a
timeout runs; oslo's call_monitor_timeout fails the call when they stop."""

from __future__ import annotations

import signal
import time

import pytest

from cinder_sharedlvm_driver import client as sl_client
from cinder_sharedlvm_driver import exception as sl_exc
from conftest import VG

MONITOR = 4


class RecordingClient:
    """Stands in for oslo's RPC client: records the context of every call."""

    def __init__(self) -> None:
        self.sent: list[dict] = []

    def prepare(self, **_kw):
        return self

    def call(self, ctxt, method, **kwargs):
        self.sent.append(dict(ctxt))
        return {"agents": []}


def test_stopped_controller_is_noticed_by_the_call_monitor(cinder_env, private_cluster):
    c = private_cluster
    client = sl_client.ControllerClient(
        cinder_env.CONF, c.amqp_url, topic=c.topic, exchange="openstack",
        response_timeout=2888, query_timeout=2888, vg=VG, call_monitor_timeout=MONITOR)
    try:
        assert client.call_monitor_timeout == MONITOR
        # The controller answers while it runs (the monitor does not get in the way).
        assert isinstance(client.list_agents(what="list agents"), (dict, list))
        c.controller.signal(signal.SIGSTOP)
        try:
            start = time.monotonic()
            with pytest.raises(sl_exc.ControllerUnreachable) as info:
                client.list_agents(what="list agents")
            took = time.monotonic() - start
        finally:
            c.controller.signal(signal.SIGCONT)
        print(f"\ncall monitor {MONITOR} s, response timeout 2888 s: the stopped controller was "
              f"noticed after {took:.1f} s")
        text = str(info.value)
        assert "no heartbeat" in text and "agent_call_monitor_timeout" in text, text
        # The request was sent: the caller must not take the error for "nothing happened".
        assert "may have run or still be running" in text, text
        # Generous: the point is "about the monitor's time", not the 2888 s timeout.
        assert took < 2888 / 10
        # Back from SIGSTOP, the controller answers again.
        assert isinstance(client.list_agents(what="list agents"), (dict, list))
    finally:
        client.close()


def test_zero_disables_the_monitor(cinder_env):
    client = sl_client.ControllerClient(
        cinder_env.CONF, "amqp://guest:guest@127.0.0.1:1/", topic="t", exchange="openstack",
        response_timeout=10, query_timeout=10, vg=VG, call_monitor_timeout=0)
    assert client.call_monitor_timeout is None


def test_calls_carry_the_time_by_which_the_controller_must_take_them(cinder_env):
    """The monitor gives up on a request no controller took in time; aos_start_by (publish +
    monitor - 2 s) tells a controller restarted later not to run it (Tests/interop/
    test_chaos_controller.py shows the server side)."""
    fake = RecordingClient()
    for monitor, expected in ((MONITOR, True), (2, False), (0, False)):
        client = sl_client.ControllerClient(
            cinder_env.CONF, "amqp://guest:guest@127.0.0.1:1/", topic="t", exchange="openstack",
            response_timeout=2888, query_timeout=2888, vg=VG, call_monitor_timeout=monitor)
        client._rpc_client = lambda: fake  # type: ignore[method-assign]
        before = time.time()
        client.list_agents(what="list agents")
        ctxt = fake.sent[-1]
        assert (sl_client.START_BY_KEY in ctxt) == expected, (monitor, ctxt)
        if expected:
            assert before + MONITOR - 2 <= ctxt[sl_client.START_BY_KEY] <= time.time() + MONITOR - 2


def test_calls_carry_the_callers_deadline(cinder_env):
    """aos_deadline (publish + the call's timeout: the query timeout for queries) lets the
    controller refuse work its caller no longer waits for, as it does for Swift callers
    (Tests/interop/test_rpc_interop.py shows a Swift server refusing a passed one)."""
    fake = RecordingClient()
    client = sl_client.ControllerClient(
        cinder_env.CONF, "amqp://guest:guest@127.0.0.1:1/", topic="t", exchange="openstack",
        response_timeout=2888, query_timeout=60, vg=VG, call_monitor_timeout=MONITOR)
    client._rpc_client = lambda: fake  # type: ignore[method-assign]
    for call, timeout in ((lambda: client.list_agents(what="list agents"), 60),
                          (lambda: client.delete_volume("volume-1", what="delete"), 2888)):
        before = time.time()
        call()
        deadline = fake.sent[-1][sl_client.DEADLINE_KEY]
        assert before + timeout <= deadline <= time.time() + timeout, (timeout, fake.sent[-1])
