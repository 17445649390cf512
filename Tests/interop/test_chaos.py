"""Chaos (issue 15), figures in docs/reliability.md. Under a steady load of volume operations:
the broker is killed (SIGKILL) and restarted, with the project's topic queues classic and
transient (the defaults) and with durable quorum queues (`rabbit_quorum_queue`, as oslo names
it) on every party; a 3-node cluster with quorum queues loses the node leading the controller's
queue. Apart from the load: an agent is cut off the network (a silent proxy) while calls wait.

Each test runs its own private broker (it is killed), a controller and two simulated agents,
and four oslo.messaging callers cycling volumes as the Cinder driver does (create, activate
exclusive on a host, deactivate, delete; retry=3 so that an outage fails a call instead of
blocking it). It prints a table of figures (docs/reliability.md) and asserts what must hold
whatever the timing:
- no acknowledged operation is lost: every volume ends in the state of its last acknowledged
  operation, or, when the next operation failed, in that state or the next one (a failed call
  may or may not have run; nothing else is allowed);
- no call hangs: each ends with a result or a clear error within its timeout (plus slack);
- every process works again after the broker is back: a call through the controller to each
  agent succeeds (the time it took is a figure, not an assertion).
Nothing sleeps to synchronise: the load runs for fixed windows and the test polls conditions.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import oslo_messaging
import pytest

from conftest import REPO_ROOT, controller_args, make_oslo_conf, start_sim_agent, to_rabbit_url

pytestmark = [pytest.mark.timeout(300), pytest.mark.chaos]

VG = "vg0"
CONTROLLER_TOPIC = "aos-controller"
CALLERS = 4
CALL_TIMEOUT = 15.0  # each caller's oslo timeout
# oslo counts its timeout from the publish; before it, retry=3 reconnects with a growing
# interval (1 s, +2 s each: ~9 s), so a call started as the broker dies may end ~25 s later.
HUNG_SLACK = 20.0
LOAD_BEFORE_KILL = 4.0  # seconds of load before the broker dies
DOWN_FOR = 2.0  # seconds between the kill and the restart's start (the restart takes ~10 s more)
LOAD_AFTER_BACK = 20.0  # seconds of load once the broker accepts connections again
BROKER = REPO_ROOT / "scripts" / "rabbitmq-private.sh"

QUORUM_SETTINGS = {
    "oslo_messaging_rabbit.amqp_durable_queues": "true",
    "oslo_messaging_rabbit.rabbit_quorum_queue": "true",
}


class PrivateBroker:
    """A broker of its own (this test kills it), through scripts/rabbitmq-private.sh."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def _run(self, command: str, timeout: float = 180) -> None:
        r = subprocess.run(["bash", str(BROKER), command, str(self.dir)], capture_output=True,
                           text=True, timeout=timeout)
        if r.returncode != 0:
            raise AssertionError(f"rabbitmq-private.sh {command} failed ({r.returncode}):\n{r.stderr}")

    def start(self) -> str:
        self._run("start")
        env = dict(line.split("=", 1) for line in (self.dir / "broker.env").read_text().splitlines())
        return env["AOS_TEST_AMQP_URL"]

    def kill(self) -> None:
        self._run("kill", timeout=30)

    def restart(self) -> None:
        self._run("restart")

    def stop(self) -> None:
        subprocess.run(["bash", str(BROKER), "stop", str(self.dir)], capture_output=True, timeout=120)


# ---- the load --------------------------------------------------------------------------------

STEPS = ("create", "activate", "deactivate", "delete")


@dataclass
class Call:
    step: str
    host: str
    started: float
    ended: float | None = None
    outcome: str = "running"  # ok | <exception class> | MessagingTimeout
    message: str = ""


@dataclass
class VolumeRun:
    name: str
    host: str
    calls: list[Call] = field(default_factory=list)

    def acked(self) -> int:
        """How many steps were acknowledged, in order."""
        n = 0
        for c in self.calls:
            if c.outcome != "ok":
                break
            n += 1
        return n

    def attempted_after_acked(self) -> bool:
        return len(self.calls) > self.acked()


def expected_state(steps_done: int, host: str) -> tuple[str, frozenset[tuple[str, str]]]:
    """(existence, activations) after the first `steps_done` steps of a volume's cycle."""
    if steps_done == 0 or steps_done >= 4:
        return ("absent", frozenset())
    if steps_done == 2:
        return ("present", frozenset({(host, "exclusive")}))
    return ("present", frozenset())


class Load:
    """CALLERS threads cycling volumes through the controller until stopped."""

    def __init__(self, transport: Any, hosts: list[str], tag: str) -> None:
        self.transport = transport
        self.hosts = hosts
        self.tag = tag
        self.stop = threading.Event()
        self.volumes: list[VolumeRun] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(CALLERS)]

    def client(self) -> Any:
        return oslo_messaging.get_rpc_client(
            self.transport, oslo_messaging.Target(topic=CONTROLLER_TOPIC, version="1.0"),
            timeout=CALL_TIMEOUT, retry=3)

    def _run(self, caller: int) -> None:
        client = self.client()
        i = 0
        while not self.stop.is_set():
            run = VolumeRun(f"volume-chaos-{self.tag}-{caller}-{i}", self.hosts[(caller + i) % len(self.hosts)])
            with self.lock:
                self.volumes.append(run)
            for step in STEPS:
                call = Call(step, run.host, time.monotonic())
                run.calls.append(call)
                try:
                    self._step(client, step, run)
                    call.outcome = "ok"
                except oslo_messaging.MessagingTimeout:
                    call.outcome = "MessagingTimeout"
                except oslo_messaging.RemoteError as e:
                    call.outcome = e.exc_type or "RemoteError"
                    call.message = str(e.value)[:200]
                except Exception as e:  # noqa: BLE001 - every other failure is counted by class
                    call.outcome = type(e).__name__
                call.ended = time.monotonic()
                if call.outcome != "ok" or self.stop.is_set():
                    break
            if run.calls[-1].outcome != "ok":
                self.stop.wait(0.5)  # pacing: a caller whose call failed does not spin on the outage
            i += 1

    @staticmethod
    def _step(client: Any, step: str, run: VolumeRun) -> None:
        ctx = {"request_id": f"req-{uuid.uuid4()}"}
        if step == "create":
            client.call(ctx, "create_volume", vg=VG, name=run.name, size_gb=1)
        elif step == "activate":
            client.call(ctx, "activate_volume", vg=VG, name=run.name, host=run.host, mode="exclusive")
        elif step == "deactivate":
            client.call(ctx, "deactivate_volume", vg=VG, name=run.name, host=run.host)
        else:
            client.call(ctx, "delete_volume", vg=VG, name=run.name, volume_clear="none")

    def calls(self) -> list[Call]:
        with self.lock:
            return [c for v in self.volumes for c in v.calls]


def _probe(transport: Any, who: str, since: float, recovered: dict[str, float | None]) -> None:
    """Until LOAD_AFTER_BACK has passed: `list_agents` (who == "controller") or `lock_status` of
    host `who` (the controller asks that agent); records the first success, relative to since."""
    while time.monotonic() - since < LOAD_AFTER_BACK:
        client = oslo_messaging.get_rpc_client(
            transport, oslo_messaging.Target(topic=CONTROLLER_TOPIC, version="1.0"), timeout=2, retry=0)
        try:
            if who == "controller":
                client.call({}, "list_agents")
            else:
                client.call({}, "lock_status", host=who)
        except Exception:  # noqa: BLE001 - not yet
            time.sleep(0.2)  # polling interval, not synchronisation
            continue
        recovered[who] = time.monotonic() - since
        return


def volume_state(probe: Any, name: str) -> tuple[str, frozenset[tuple[str, str]]]:
    try:
        v = probe.call({}, "get_volume", vg=VG, name=name)
    except oslo_messaging.RemoteError as e:
        if e.exc_type == "NotFound":
            return ("absent", frozenset())
        raise
    return ("present", frozenset((a["host"], a["mode"]) for a in v["active_on"]))


def check_acknowledged(load: Load, probe: Any) -> tuple[list[str], int]:
    """What every volume looks like now against what its acknowledged calls allow: (the
    volumes where that fails, with their history; how many volumes' last call failed)."""
    lost: list[str] = []
    ambiguous = 0
    for v in load.volumes:
        done = v.acked()
        allowed = {expected_state(done, v.host)}
        if v.attempted_after_acked():
            allowed.add(expected_state(done + 1, v.host))
            ambiguous += 1
        # The controller's activation map follows the agents' announcements: let it settle.
        got = poll(lambda v=v, allowed=allowed: (s := volume_state(probe, v.name)) in allowed and s, 10)
        if not got:
            history = [f"{c.step}:{c.outcome}" for c in v.calls]
            lost.append(f"{v.name}: {volume_state(probe, v.name)} not in {sorted(allowed)} after {history}")
    return lost, ambiguous


# ---- the scenario ----------------------------------------------------------------------------


def retry_interrupted(load: Load) -> list[str]:
    """Retries the failed step of every interrupted cycle, then the rest of it (what a Cinder user
    does after the error; cycles cut short by the end of the load are finished too); the failures."""
    client = load.client()
    failures: list[str] = []
    for v in load.volumes:
        for step in STEPS[v.acked():]:
            try:
                Load._step(client, step, v)
            except Exception as e:  # noqa: BLE001 - reported by the caller
                failures.append(f"{v.name} {step}: {e}")
                break
    return failures


def sim_active(tmp_path: Path, host: str) -> dict[str, str]:
    """The LVs the simulated LVM (cluster.json) holds active on `host`, with their modes."""
    doc = json.loads((tmp_path / "cluster.json").read_text())
    out: dict[str, str] = {}
    for name, lv in doc["vgs"][VG]["lvs"].items():
        if lv.get("exclusiveHolder") == host:
            out[name] = "exclusive"
        elif host in (lv.get("sharedHolders") or []):
            out[name] = "shared"
    return out


def record_mismatches(tmp_path: Path, hosts: Any) -> dict[str, tuple[dict[str, str], dict[str, str]]]:
    """Each agent's activation record against the simulated LVM, for the hosts where they
    differ: (what LVM holds, what the record says)."""
    def recorded(host: str) -> dict[str, str]:
        doc = json.loads((tmp_path / host / "activations.json").read_text())
        return {r["name"]: r["mode"] for r in doc.get("activations", []) if r.get("vg") == VG}

    return {h: (sim_active(tmp_path, h), recorded(h)) for h in hosts if sim_active(tmp_path, h) != recorded(h)}


def poll(predicate: Any, timeout: float, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)  # polling interval, not synchronisation


@pytest.mark.parametrize("queues", ["classic", "quorum"])
def test_broker_kill_under_load(queues: str, spawn, tmp_path: Path) -> None:
    broker = PrivateBroker(tmp_path / "broker")
    url = broker.start()

    def fault() -> tuple[float, str]:
        t_kill = time.monotonic()
        broker.kill()
        poll(lambda: time.monotonic() - t_kill >= DOWN_FOR, DOWN_FOR + 1)
        broker.restart()
        return time.monotonic(), f"broker killed; down (kill to accepting again) {time.monotonic() - t_kill:.1f} s"

    try:
        _scenario(queues, spawn, tmp_path, url, fault)
    finally:
        broker.stop()


def test_cluster_node_loss_under_load(spawn, tmp_path: Path) -> None:
    """A 3-node RabbitMQ cluster with quorum queues loses (SIGKILL) the node that leads the
    controller's queue, under load. Every process got all three nodes in its URL and starts at a
    random one (AMQPConfiguration.spreadLoad), so the loss cuts some of them off."""
    nodes = [PrivateBroker(tmp_path / f"node{i}") for i in range(3)]
    urls = [nodes[0].start()]
    joins = [subprocess.Popen(["bash", str(BROKER), "start", str(n.dir), "--join", str(nodes[0].dir)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for n in nodes[1:]]
    try:
        for j in joins:
            _, err = j.communicate(timeout=240)
            assert j.returncode == 0, f"a node did not join: {err}"
        for n in nodes[1:]:
            env = dict(line.split("=", 1) for line in (n.dir / "broker.env").read_text().splitlines())
            urls.append(env["AOS_TEST_AMQP_URL"])
        url = "amqp://" + ",".join(u.removeprefix("amqp://").rstrip("/") for u in urls) + "/"

        def fault() -> tuple[float, str]:
            leader = _leader_of(nodes[0], CONTROLLER_TOPIC)
            victim = next(n for n in nodes if _node_name(n) == leader)
            victim.kill()
            which = f"node {nodes.index(victim)} of 3 (leader of {CONTROLLER_TOPIC})"
            return time.monotonic(), f"{which} killed, not restarted"

        _scenario("quorum", spawn, tmp_path, url, fault, label="quorum, 3-node cluster")
    finally:
        for n in reversed(nodes):  # the first node owns the cluster's epmd: last
            n.stop()


def _node_name(node: PrivateBroker) -> str:
    for line in (node.dir / "broker.env").read_text().splitlines():
        if line.startswith("AOS_TEST_BROKER_NODE="):
            return line.split("=", 1)[1]
    raise AssertionError(f"no node name in {node.dir}")


def _leader_of(node: PrivateBroker, queue: str) -> str:
    r = subprocess.run(
        ["bash", str(BROKER), "ctl", str(node.dir), "list_queues", "name", "leader", "--formatter", "json"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    leaders = {q["name"]: q.get("leader") for q in json.loads(r.stdout)}
    assert leaders.get(queue), f"no leader for {queue}: {leaders}"
    return str(leaders[queue])


def _scenario(queues: str, spawn, tmp_path: Path, url: str, fault: Any, label: str | None = None) -> None:
    settings = QUORUM_SETTINGS if queues == "quorum" else {}
    extra = [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]
    extra += ["--set", f"DEFAULT.transport_url={url}"]
    conf = tmp_path / "empty.conf"
    conf.write_text("")
    tag = uuid.uuid4().hex[:6]
    hosts = [f"chaos-a-{tag}", f"chaos-b-{tag}"]
    for host_id, host in enumerate(hosts, start=1):
        start_sim_agent(spawn, conf, tmp_path, host, host_id, VG, *extra)
    spawn("aos-controller", "--config", conf, *controller_args(f"ctl-{tag}"),
          "--set", "controller.agent_response_timeout=60", *extra, ready="READY", timeout=30)

    oslo_conf: Any = make_oslo_conf()
    from oslo_messaging._drivers import amqp, impl_rabbit  # the options must exist to be set
    oslo_conf.register_opts(impl_rabbit.rabbit_opts, group="oslo_messaging_rabbit")
    oslo_conf.register_opts(amqp.amqp_opts, group="oslo_messaging_rabbit")
    for key, value in settings.items():
        oslo_conf.set_override(key.split(".", 1)[1], value == "true", group="oslo_messaging_rabbit")
    transport = oslo_messaging.get_rpc_transport(oslo_conf, url=to_rabbit_url(url))
    try:
        _run_load(label or queues, transport, hosts, fault, tag)
    finally:
        transport.cleanup()


def _run_load(queues: str, transport: Any, hosts: list[str], fault: Any, tag: str) -> None:
    probe = oslo_messaging.get_rpc_client(
        transport, oslo_messaging.Target(topic=CONTROLLER_TOPIC, version="1.0"), timeout=5, retry=1)

    def alive() -> bool:
        try:
            agents = probe.call({}, "list_agents")["agents"]
        except Exception:  # noqa: BLE001 - not yet
            return False
        return all(any(a["host"] == h and a["status"] == "alive" for a in agents) for h in hosts)

    assert poll(alive, 30), f"agents {hosts} never alive before the load"
    load = Load(transport, hosts, tag)
    for t in load.threads:
        t.start()
    t0 = time.monotonic()
    poll(lambda: time.monotonic() - t0 >= LOAD_BEFORE_KILL, LOAD_BEFORE_KILL + 1)
    t_back, what = fault()
    # Recovery as a caller sees it: a query the controller forwards to each agent, tried every
    # 0.2 s on fresh clients from the moment the broker accepts connections again (or, when
    # a cluster node is lost, from the loss).
    recovered: dict[str, float | None] = {h: None for h in ["controller", *hosts]}
    probes = [threading.Thread(target=_probe, args=(transport, who, t_back, recovered), daemon=True)
              for who in recovered]
    for p in probes:
        p.start()
    poll(lambda: time.monotonic() - t_back >= LOAD_AFTER_BACK, LOAD_AFTER_BACK + 1)
    load.stop.set()
    for t in load.threads + probes:
        t.join(timeout=CALL_TIMEOUT + HUNG_SLACK + 15)
    hung = [t.name for t in load.threads if t.is_alive()]

    calls = load.calls()
    outcomes = Counter(c.outcome for c in calls)
    after_back = [c for c in calls if c.started >= t_back]
    slow = [c for c in calls if c.ended is not None and c.ended - c.started > CALL_TIMEOUT + HUNG_SLACK]

    lost, ambiguous = check_acknowledged(load, probe)

    NOT_CLEAR = ("ok", "MessagingTimeout", "running")
    rows = [
        ("queues", queues),
        ("operations (calls)", str(len(calls))),
        ("acknowledged", str(outcomes["ok"])),
        ("failed with a clear error", str(sum(n for k, n in outcomes.items() if k not in NOT_CLEAR))),
        ("timed out (MessagingTimeout)", str(outcomes["MessagingTimeout"])),
        ("of the calls started after the broker was back: timed out",
         str(sum(1 for c in after_back if c.outcome == "MessagingTimeout"))),
        (f"hung (no answer within timeout + {HUNG_SLACK:.0f} s)", str(len(slow) + len(hung))),
        ("acknowledged operations lost", str(len(lost))),
        ("volumes whose last call failed (state checked against both)", str(ambiguous)),
        ("fault", what),
    ] + [(f"fault over to the first answer through {'the controller' if h == 'controller' else 'its agent ' + h}",
          "never" if r is None else f"{r:.1f} s") for h, r in recovered.items()]
    rows.append(("errors by class", ", ".join(f"{k} {n}" for k, n in sorted(outcomes.items()) if k != "ok") or "none"))
    for kind in sorted(k for k in outcomes if k not in NOT_CLEAR):
        first = next(c for c in calls if c.outcome == kind)
        rows.append((f"first {kind}", first.message.replace("|", "/")))
    print("\n" + "\n".join(f"| {k} | {v} |" for k, v in rows))
    report = os.environ.get("AOS_CHAOS_REPORT")
    if report:
        with open(report, "a") as f:
            f.write("\n".join(f"| {k} | {v} |" for k, v in rows) + "\n\n")

    assert not lost, "acknowledged operations lost:\n" + "\n".join(lost)
    assert not hung and not slow, f"calls hung: threads {hung}, slow {[(c.step, c.outcome) for c in slow]}"
    assert all(r is not None for r in recovered.values()), f"a host never worked again: {recovered}"


# ---- an agent cut off the network --------------------------------------------------------------


def test_agent_partitioned_under_calls(spawn, amqp_url: str, broker_env, tmp_path: Path, oslo_transport) -> None:
    """Host A's agent reaches the broker through a proxy that goes silent (a partition: no
    reset, packets into a black hole). What must hold: see partition_scenario."""
    from peers import FreezableProxy

    port = int(broker_env["AOS_TEST_AMQP_URL"].rsplit(":", 1)[1].strip("/"))
    proxy = FreezableProxy(port)
    conf = tmp_path / "empty.conf"
    conf.write_text("")

    def start_a(host: str) -> Any:
        return start_sim_agent(spawn, conf, tmp_path, host, 1, VG,
                               "--set", f"DEFAULT.transport_url=amqp://guest:guest@127.0.0.1:{proxy.port}/")

    try:
        partition_scenario(spawn, amqp_url, tmp_path, oslo_transport, start_a, proxy.freeze, proxy.thaw,
                           "partition")
    finally:
        proxy.close()


def partition_scenario(spawn: Any, amqp_url: str, tmp_path: Path, oslo_transport: Any, start_a: Any,
                       cut: Any, heal: Any, label: str) -> None:
    """Host A's agent (started by start_a(host), its link to the broker cut by cut() and healed by
    heal()); host B and the controller reach the broker directly. What must hold: the controller
    marks A down and then fails calls for A at once; a call that was waiting when A went down says
    the request may still run; nobody else gets A's exclusive lock meanwhile; after the link is
    back A is alive, its LV still held by A alone, and the figures say when the waiting request ran."""
    conf = tmp_path / "empty.conf"
    conf.write_text("")
    tag = uuid.uuid4().hex[:6]
    a, b = f"part-a-{tag}", f"part-b-{tag}"
    start_a(a)
    start_sim_agent(spawn, conf, tmp_path, b, 2, VG, "--set", f"DEFAULT.transport_url={amqp_url}")
    spawn("aos-controller", "--config", conf, *controller_args(f"ctl-{tag}"),
          "--set", f"DEFAULT.transport_url={amqp_url}", "--set", f"controller.preferred_hosts={b}",
          ready="READY", timeout=30)
    ctl = oslo_messaging.get_rpc_client(
        oslo_transport, oslo_messaging.Target(topic=CONTROLLER_TOPIC, version="1.0"), timeout=30)

    def call(method: str, **kw: Any) -> Any:
        return ctl.call({"request_id": f"req-{uuid.uuid4()}"}, method, **kw)

    def status(h: str) -> str | None:
        return next((x["status"] for x in call("list_agents")["agents"] if x["host"] == h), None)

    def holders(name: str) -> set[tuple[str, str]]:
        return {(x["host"], x["mode"]) for x in call("get_volume", vg=VG, name=name)["active_on"]}

    assert poll(lambda: status(a) == "alive" and status(b) == "alive", 30), "agents never alive"
    held, waiting = f"volume-held-{tag}", f"volume-wait-{tag}"
    for name in (held, waiting):
        call("create_volume", vg=VG, name=name, size_gb=1)
    call("activate_volume", vg=VG, name=held, host=a, mode="exclusive")

    cut()
    t_cut = time.monotonic()
    # A call that is waiting when A goes down.
    outcome: dict[str, Any] = {}

    def waiting_call() -> None:
        try:
            outcome["result"] = call("activate_volume", vg=VG, name=waiting, host=a, mode="exclusive")
        except oslo_messaging.RemoteError as e:
            outcome["error"] = e
        outcome["after"] = time.monotonic() - t_cut

    th = threading.Thread(target=waiting_call, daemon=True)
    th.start()
    assert poll(lambda: status(a) == "down", 30), f"{a} never marked down"
    t_down = time.monotonic() - t_cut
    th.join(timeout=30)
    assert not th.is_alive(), "the call waiting for the partitioned agent hung"
    err = outcome.get("error")
    assert err is not None and err.exc_type == "AgentUnavailable", outcome
    assert "may still run" in err.value, err.value

    t0 = time.monotonic()
    with pytest.raises(oslo_messaging.RemoteError) as fast:
        call("activate_volume", vg=VG, name=waiting, host=a, mode="exclusive")
    fail_fast = time.monotonic() - t0
    assert fast.value.exc_type == "AgentUnavailable" and "not sent" in fast.value.value, fast.value.value
    # A deactivation for the down host is recorded as released (evacuate: docs/cinder.md), not run.
    released = call("deactivate_volume", vg=VG, name=held, host=a)
    assert released.get("released") is True, released
    # Nobody takes A's exclusive lock while A is cut off.
    with pytest.raises(oslo_messaging.RemoteError) as doubled:
        call("activate_volume", vg=VG, name=held, host=b, mode="exclusive")
    assert doubled.value.exc_type == "LockedByOtherHost", doubled.value.value

    poll(lambda: time.monotonic() - t_cut >= 10, 11)
    heal()
    t_thaw = time.monotonic()
    assert poll(lambda: status(a) == "alive", 60), f"{a} never came back"
    back = time.monotonic() - t_thaw
    assert poll(lambda: holders(held) == {(a, "exclusive")}, 15), holders(held)
    ran = poll(lambda: (a, "exclusive") in holders(waiting), 15)
    ran_after = time.monotonic() - t_thaw if ran else None
    rows = [
        (f"{label}: controller marked the agent down after", f"{t_down:.1f} s"),
        (f"{label}: the waiting call failed (may still run) after", f"{outcome['after']:.1f} s"),
        (f"{label}: a call for the down agent failed in", f"{fail_fast * 1000:.0f} ms"),
        (f"{label}: deactivate for the down agent", "released (tag by the live agent), not run"),
        (f"{label}: exclusive lock taken by another host meanwhile", "no (LockedByOtherHost)"),
        (f"{label}: agent alive again after the link came back", f"{back:.1f} s"),
        (f"{label}: the waiting request ran after the link came back",
         "no" if ran_after is None else f"yes, within {ran_after:.1f} s (the error said it might)"),
    ]
    print("\n" + "\n".join(f"| {k} | {v} |" for k, v in rows))
    report = os.environ.get("AOS_CHAOS_REPORT")
    if report:
        with open(report, "a") as f:
            f.write("\n".join(f"| {k} | {v} |" for k, v in rows) + "\n\n")


# ---- an agent killed (SIGKILL) at random points under load -------------------------------------


def test_agent_kill9_at_random_points_under_load(spawn, amqp_url: str, tmp_path: Path, oslo_transport) -> None:
    """Host A's agent is SIGKILLed KILLS times at random moments while four callers cycle volumes
    on hosts A and B, and restarted each time. What must hold: no acknowledged operation lost;
    each agent's activation record (state_dir/activations.json) names exactly the LVs the
    (simulated) LVM has active on its host, in the same mode; and every interrupted cycle
    finishes when its failed step is simply retried."""
    import random

    kills = 6
    conf = tmp_path / "empty.conf"
    conf.write_text("")
    tag = uuid.uuid4().hex[:6]
    a, b = f"kill-a-{tag}", f"kill-b-{tag}"
    url = ["--set", f"DEFAULT.transport_url={amqp_url}"]
    agents = {a: start_sim_agent(spawn, conf, tmp_path, a, 1, VG, *url),
              b: start_sim_agent(spawn, conf, tmp_path, b, 2, VG, *url)}
    spawn("aos-controller", "--config", conf, *controller_args(f"ctl-{tag}"), *url,
          "--set", "controller.agent_response_timeout=60", ready="READY", timeout=30)
    probe = oslo_messaging.get_rpc_client(
        oslo_transport, oslo_messaging.Target(topic=CONTROLLER_TOPIC, version="1.0"), timeout=10)

    def alive(h: str) -> bool:
        try:
            return any(x["host"] == h and x["status"] == "alive" for x in probe.call({}, "list_agents")["agents"])
        except Exception:  # noqa: BLE001 - not yet
            return False

    assert poll(lambda: alive(a) and alive(b), 30), "agents never alive"
    load = Load(oslo_transport, [a, b], tag)
    for th in load.threads:
        th.start()
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    restart_times: list[float] = []
    for _ in range(kills):
        pause = rng.uniform(0.3, 2.5)
        t_wait = time.monotonic()
        poll(lambda t_wait=t_wait, pause=pause: time.monotonic() - t_wait >= pause, pause + 1)
        agents[a].proc.kill()  # SIGKILL
        agents[a].proc.wait(timeout=10)
        t_kill = time.monotonic()
        agents[a] = start_sim_agent(spawn, conf, tmp_path, a, 1, VG, *url)
        restart_times.append(time.monotonic() - t_kill)
    t_last = time.monotonic()
    poll(lambda: time.monotonic() - t_last >= 5, 6)
    load.stop.set()
    for th in load.threads:
        th.join(timeout=CALL_TIMEOUT + HUNG_SLACK + 15)
    assert not any(th.is_alive() for th in load.threads), "a caller hung"
    assert poll(lambda: alive(a), 30), f"{a} not alive after its last restart"

    lost, ambiguous = check_acknowledged(load, probe)

    # Retrying the failed step of every interrupted cycle, then the rest of it, succeeds.
    retry_failures = retry_interrupted(load)
    # Each agent's record against the (simulated) LVM, once nothing runs: every cycle ended in a delete.
    mismatch = record_mismatches(tmp_path, (a, b))
    leftovers = [n for n in json.loads((tmp_path / "cluster.json").read_text())["vgs"][VG]["lvs"]
                 if n.startswith(f"volume-chaos-{tag}")]
    calls = load.calls()
    outcomes = Counter(c.outcome for c in calls)
    rows = [
        ("agent SIGKILLed (random moments, seed)", f"{kills} times (seed {seed})"),
        ("calls / acknowledged", f"{len(calls)} / {outcomes['ok']}"),
        ("errors by class", ", ".join(f"{k} {n}" for k, n in sorted(outcomes.items()) if k != "ok") or "none"),
        ("acknowledged operations lost", str(len(lost))),
        ("interrupted cycles finished by retrying the failed step",
         f"{ambiguous - len(retry_failures)} of {ambiguous}"),
        ("records that differ from LVM afterwards", str(len(mismatch))),
        ("agent restart to READY (median)", f"{sorted(restart_times)[len(restart_times) // 2]:.2f} s"),
    ]
    print("\n" + "\n".join(f"| {k} | {v} |" for k, v in rows))
    report = os.environ.get("AOS_CHAOS_REPORT")
    if report:
        with open(report, "a") as f:
            f.write("\n".join(f"| {k} | {v} |" for k, v in rows) + "\n\n")
    assert not lost, "acknowledged operations lost:\n" + "\n".join(lost)
    assert not retry_failures, "a retry failed:\n" + "\n".join(retry_failures)
    assert not mismatch, f"activation records differ from LVM (sim, record): {mismatch}"
    assert not leftovers, f"volumes left after every cycle was finished: {leftovers}"
