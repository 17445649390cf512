"""Chaos (issue 15): a real network partition. Host A's agent runs in its own network namespace
and reaches the private broker through a veth pair (netns_link.py); the link is taken down while
a call for A waits, and brought back after 10 s. Asserted as for the silent proxy
(test_chaos.partition_scenario): A marked down, the waiting call fails saying the request may
still run, calls for A fail fast afterwards, nobody else gets A's exclusive lock, A is back and
still the only holder after the link returns. Skipped (with the reason) where network
namespaces cannot be made (not root, no iproute2, a container without CAP_SYS_ADMIN)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import netns_link
from conftest import sim_agent_args
from test_chaos import VG, partition_scenario

pytestmark = [pytest.mark.timeout(180), pytest.mark.chaos]


def test_agent_partitioned_by_netns_link_down(spawn, swift_bin: Path, broker_env, amqp_url: str,
                                              tmp_path: Path, oslo_transport) -> None:
    why = netns_link.unavailable()
    if why:
        pytest.skip(f"no network namespace: {why}")
    port = int(broker_env["AOS_TEST_AMQP_URL"].rsplit(":", 1)[1].strip("/"))
    conf = tmp_path / "empty.conf"
    conf.write_text("")
    with netns_link.VethNamespace() as ns:
        relay = netns_link.Relay(ns.host_ip, port)
        try:
            def start_a(host: str) -> Any:
                return spawn(netns_link.IP, *ns.argv(
                    str(swift_bin / "aos-agent"), "--config", str(conf), *sim_agent_args(tmp_path, host, 1, VG),
                    "--set", f"DEFAULT.transport_url=amqp://guest:guest@{ns.host_ip}:{relay.port}/"),
                    ready=f"READY host={host}", timeout=60)

            partition_scenario(spawn, amqp_url, tmp_path, oslo_transport, start_a, ns.cut, ns.heal,
                               "netns partition")
        finally:
            relay.close()
