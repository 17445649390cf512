"""Heartbeats between full announcements (issue 17): agents that send their full report only on
a change or a (re)connection (`full_announce_every` = 360) stay alive through heartbeats alone,
and a controller started after their last full report learns it by asking (`health()`), not by
waiting for the next full one. Two simulated agents and the real controller."""

from __future__ import annotations

import time

import pytest

import test_controller_e2e as e2e
from conftest import start_cluster, start_sim_agent
from test_controller_e2e import VG, active_on, agent_statuses, wait_alive, wait_for

ctl = e2e.ctl


class HeartbeatCluster(e2e.Cluster):
    def start_agent(self, host: str, host_id: int):
        proc = start_sim_agent(self.spawn, self.conf, self.tmp, host, host_id, VG,
                               "--set", f"DEFAULT.transport_url={self.amqp_url}",
                               "--set", "agent.full_announce_every=360")
        self.agents[host] = proc
        return proc


@pytest.fixture
def cluster(spawn, amqp_url, tmp_path, swift_bin) -> HeartbeatCluster:
    return start_cluster(HeartbeatCluster(spawn, amqp_url, tmp_path, swift_bin))


def test_heartbeats_keep_agents_alive_and_a_new_controller_asks_for_the_report(cluster, ctl):
    a, b = cluster.host_a, cluster.host_b
    wait_alive(ctl, a, b)
    ctl("create_volume", vg=VG, name="volume-hb", size_gb=1)
    ctl("activate_volume", vg=VG, name="volume-hb", host=a, mode="exclusive")

    # The controller counts an agent down 3 s after its last word; the agents' last full
    # reports are older than that from here on, so only heartbeats keep them alive.
    t0 = time.monotonic()
    checks = 0
    while time.monotonic() - t0 < 6:
        statuses = agent_statuses(ctl)
        assert statuses.get(a) == "alive" and statuses.get(b) == "alive", statuses
        checks += 1
    print(f"alive through heartbeats alone: {checks} list_agents calls over 6 s")

    # A controller started now has no report; the next full one is 360 announcements away.
    assert cluster.controllers[0].stop() == 0
    cluster.start_controller("ctl-2")
    t1 = time.monotonic()
    wait_for(lambda: active_on(ctl("get_volume", vg=VG, name="volume-hb")) == {(a, "exclusive")},
             timeout=10, what="the activation learnt from a fetched report")
    print(f"new controller knew the activation after {time.monotonic() - t1:.2f} s")
    wait_alive(ctl, a, b)
    log = cluster.controllers[-1].stderr_text()
    assert "could not fetch the agent's report" not in log, log[-2000:]

    ctl("deactivate_volume", vg=VG, name="volume-hb", host=a)
    ctl("delete_volume", vg=VG, name="volume-hb")
