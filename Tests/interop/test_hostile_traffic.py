"""Hostile traffic against the agent and the controller (issue 11, "trust boundary").

For each server kind, >= 10,000 hostile messages (the classes of `hostile.py`, then seeded random
mutations of valid requests) go straight onto the broker with py-amqp, as the login user of
`hostile_url` (the AMQP `user_id` property is that user, which RabbitMQ checks). After every
class a valid call goes to each server's directed queue (its latency is printed) and every
process is checked: a dead one is a crash (restarted, so later classes are still measured). The
simulated LVM state shared by the agents (their state file) is compared before and after each
class, and the agents' logs are searched for LVM changes. At the end every probe that named our
reply queue must have had an answer, and a valid oslo.messaging call must still be answered.

The table (class, sent, replies due, got, silent, crashes, state changes, LVM log lines, time,
valid-call latency) is printed and written to the test's tmp dir as hostile-<kind>.txt.

    scripts/test.sh --no-setup --no-cinder --no-lab --interop-only -k hostile
    AOS_HOSTILE_SEED=1234 …            reproduce a run's messages (the seed is printed)
    AOS_HOSTILE_AMQP_URL=amqp://u:p@…  send as another broker user (the servers keep the broker URL)
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import amqp
import oslo_messaging
import pytest

from hostile import (
    CLASSES,
    LATE_CLASSES,
    AnnounceSpec,
    ArgSpec,
    HostileGenerator,
    Probe,
    Route,
    Surface,
    envelope,
    names_reply,
)

pytestmark = pytest.mark.timeout(600)

VG = "vg0"
MIN_MESSAGES = 10_000
MIN_MUTATIONS = 4_000
BARRIER_TIMEOUT = 10.0  # generous, per class; the issue wants < 1 s, which the table shows
FINAL_CALL_TIMEOUT = 10.0
DRAIN_IDLE = 5.0  # the final wait for answers ends after this long without a new one …
DRAIN_CAP = 45.0  # … or after this long in all
# What the agents log (info/notice) when LVM changed something: the message ends the line.
LVM_CHANGE = re.compile(r"\[AgentCore\] (created LV|extended LV|deleted LV|activated LV|deactivated LV|refreshed LV|"
                        r"lockspace started|recovery step|restored activation)\s*$")


# ---- broker login --------------------------------------------------------------------------


@dataclass(frozen=True)
class Login:
    host: str
    port: int
    user: str
    password: str
    vhost: str

    @classmethod
    def parse(cls, url: str) -> Login:
        u = urlsplit(url)
        vhost = unquote(u.path[1:]) if len(u.path) > 1 else "/"
        return cls(u.hostname or "127.0.0.1", u.port or 5672, unquote(u.username or "guest"),
                   unquote(u.password or "guest"), vhost)

    def connect(self) -> amqp.Connection:
        conn = amqp.Connection(host=f"{self.host}:{self.port}", userid=self.user, password=self.password,
                               virtual_host=self.vhost, heartbeat=0, connect_timeout=10)
        conn.connect()
        return conn


@pytest.fixture
def hostile_url(amqp_url: str) -> str:
    """The broker login the hostile messages are sent with (default: the test broker's URL)."""
    return os.environ.get("AOS_HOSTILE_AMQP_URL") or amqp_url


@pytest.fixture
def hostile_seed() -> int:
    seed = int(os.environ.get("AOS_HOSTILE_SEED") or random.SystemRandom().randrange(1 << 32))
    print(f"\nhostile traffic seed: AOS_HOSTILE_SEED={seed}")
    return seed


# ---- replies -------------------------------------------------------------------------------


def reply_msg_id(body: bytes) -> tuple[str | None, bool]:
    """(msg id, final?) of an oslo reply; a heartbeat (ending false, no result) is not final."""
    try:
        outer = json.loads(body)
        inner = json.loads(outer["oslo.message"]) if isinstance(outer, dict) and "oslo.message" in outer else outer
        msg_id = inner.get("_msg_id")
        heartbeat = inner.get("ending") is False and inner.get("result") is None and inner.get("failure") is None
        return (msg_id if isinstance(msg_id, str) else None), not heartbeat
    except (ValueError, TypeError, AttributeError, KeyError):
        found = re.search(rb'_msg_id\\?"\s*:\s*\\?"([0-9a-f]+)', body)
        return (found.group(1).decode() if found else None), True


class ReplyCollector:
    """Consumes our reply queue on its own connection and thread; counts final replies per msg id."""

    def __init__(self, login: Login) -> None:
        self.queue = f"reply_{uuid.uuid4().hex}"
        self.conn = login.connect()
        channel = self.conn.channel()
        channel.queue_declare(self.queue, durable=False, auto_delete=False, arguments={"x-expires": 1_800_000})
        channel.basic_consume(self.queue, callback=self._on_message, no_ack=True)
        self.replies: dict[str, int] = {}
        self.unmatched = 0
        self.error = ""  # set when the consumer lost its connection: the counts are then useless
        self.last_reply = time.monotonic()
        self.cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hostile-replies", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.conn.drain_events(timeout=0.2)
            except TimeoutError:
                continue
            except (OSError, amqp.exceptions.AMQPError) as e:
                self.error = f"{type(e).__name__}: {e}"
                return

    def _on_message(self, message: amqp.Message) -> None:
        body = message.body
        msg_id, final = reply_msg_id(body if isinstance(body, bytes) else str(body).encode("utf-8", "surrogateescape"))
        with self.cond:
            self.last_reply = time.monotonic()
            if msg_id is None:
                self.unmatched += 1
            elif final:
                self.replies[msg_id] = self.replies.get(msg_id, 0) + 1
            self.cond.notify_all()

    def wait_for(self, msg_id: str, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: msg_id in self.replies, timeout=timeout)

    def drain(self, due: set[str]) -> None:
        """Waits until every due msg id has an answer, or answers stop coming."""
        start = time.monotonic()
        with self.cond:
            while not due <= self.replies.keys():
                now = time.monotonic()
                if now - self.last_reply > DRAIN_IDLE or now - start > DRAIN_CAP:
                    return
                self.cond.wait(timeout=0.5)

    def answered(self, due: set[str]) -> int:
        with self.cond:
            return sum(1 for m in due if m in self.replies)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self.conn.close()
        except (OSError, amqp.exceptions.AMQPError):
            pass


class Publisher:
    """Publishes probes on one channel without confirms; checks the channel after each batch."""

    def __init__(self, login: Login) -> None:
        self.user = login.user
        self.conn = login.connect()
        self.channel = self.conn.channel()

    def properties(self, probe: Probe) -> dict[str, Any]:
        props: dict[str, Any] = {"delivery_mode": 2, "priority": 0, "application_headers": {},
                                 "user_id": self.user}
        for key in ("content_type", "content_encoding", "expiration"):
            value = getattr(probe, key)
            if value is not None:
                props[key] = value
        return props

    def publish(self, probe: Probe) -> None:
        self.channel.basic_publish(amqp.Message(probe.body, **self.properties(probe)),
                                   exchange=probe.route.exchange, routing_key=probe.route.routing_key)

    def publish_checked(self, probe: Probe) -> bool:
        """On a channel of its own, then a round trip: False when the broker refused the message."""
        channel = self.conn.channel()
        try:
            channel.basic_publish(amqp.Message(probe.body, **self.properties(probe)),
                                  exchange=probe.route.exchange, routing_key=probe.route.routing_key)
            channel.basic_qos(0, 1, False)
        except amqp.exceptions.ChannelError:
            return False
        channel.close()
        return True

    def check(self) -> None:
        """A round trip: fails if the broker closed our channel (messages would have been lost)."""
        self.channel.basic_qos(0, 1000, False)

    def close(self) -> None:
        try:
            self.conn.close()
        except (OSError, amqp.exceptions.AMQPError):
            pass


# ---- the processes ---------------------------------------------------------------------------


@dataclass
class Server:
    name: str  # "agent A", "controller"
    start: Callable[[], Any]
    directed: Route
    barrier: tuple[str, dict[str, Any]]
    proc: Any = None
    log_offset: int = 0
    is_agent: bool = True

    def launch(self) -> None:
        self.proc = self.start()
        self.log_offset = len(self.proc.stderr_text())


@dataclass
class Fleet:
    servers: list[Server]
    state_file: Path
    crashes: list[str] = field(default_factory=list)

    def launch(self) -> None:
        for s in self.servers:
            s.launch()

    def reap(self, cls: str) -> int:
        """Counts the dead servers, keeps their stderr, and starts them again."""
        dead = [s for s in self.servers if s.proc.proc.poll() is not None]
        for s in dead:
            tail = "\n".join(s.proc.stderr_text().splitlines()[-30:])
            self.crashes.append(f"{s.name} died during {cls} (exit {s.proc.proc.returncode}):\n{tail}")
            s.launch()
        return len(dead)

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text())

    def lvm_log_lines(self) -> int:
        """LVM changes the agents logged since the last call."""
        count = 0
        for s in self.servers:
            if not s.is_agent:
                continue
            text = s.proc.stderr_text()
            count += sum(1 for line in text[s.log_offset:].splitlines() if LVM_CHANGE.search(line))
            s.log_offset = len(text)
        return count


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """path -> leaf; lists are compared as sets (the simulator writes Swift sets in any order)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}/{k}"))
        return out
    if isinstance(value, list):
        return {prefix: sorted(json.dumps(v, sort_keys=True) for v in value)}
    return {prefix: value}


def state_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The LVs (or other state entries) that differ between two snapshots of the simulated VG."""
    a, b = flatten(before), flatten(after)
    changed = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
    return sorted({re.sub(r"^(/vgs/[^/]+/lvs/[^/]+).*", r"\1", k) for k in changed})


# ---- the table -------------------------------------------------------------------------------


@dataclass
class Row:
    cls: str
    sent: int = 0
    due: set[str] = field(default_factory=set)
    probes: dict[str, Probe] = field(default_factory=dict)  # by msg id, to show a silent one
    got: int = 0
    refused_by_broker: int = 0
    crashes: int = 0
    changed: list[str] = field(default_factory=list)
    lvm_lines: int = 0
    seconds: float = 0.0
    valid_call: float | None = None  # slowest answer to the valid calls after the class

    @property
    def state_changes(self) -> int:
        return len(self.changed)

    @property
    def silent(self) -> int:
        return len(self.due) - self.got

    def cells(self) -> list[str]:
        call = "none" if self.valid_call is None else f"{self.valid_call * 1000:.0f} ms"
        sent = f"{self.sent}" + (f" ({self.refused_by_broker} refused)" if self.refused_by_broker else "")
        return [self.cls, sent, str(len(self.due)), str(self.got), str(self.silent), str(self.crashes),
                str(self.state_changes), str(self.lvm_lines), f"{self.seconds:.1f}", call]


HEADER = ["class", "sent", "replies due", "got", "silent", "crashes", "state changes", "LVM log lines",
          "time s", "valid call after"]


def format_table(kind: str, rows: list[Row], extra: list[str]) -> str:
    total = Row("TOTAL", sent=sum(r.sent for r in rows), due=set().union(*(r.due for r in rows)),
                got=sum(r.got for r in rows), refused_by_broker=sum(r.refused_by_broker for r in rows),
                crashes=sum(r.crashes for r in rows), changed=[c for r in rows for c in r.changed],
                lvm_lines=sum(r.lvm_lines for r in rows), seconds=sum(r.seconds for r in rows))
    lines = [r.cells() for r in [*rows, total]]
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(HEADER)]
    fmt = " | ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    title = (f"hostile traffic against the {kind} (issue 11 wants: 0 crashes, 0 LVM commands for invalid "
             "input, 0 silent callers, a valid call answered in < 1 s right after)")
    out = [title, fmt.format(*HEADER), "-+-".join("-" * w for w in widths)]
    out += [fmt.format(*c) for c in lines]
    return "\n".join(out + extra)


# ---- running one class ------------------------------------------------------------------------


@dataclass
class Run:
    kind: str
    fleet: Fleet
    publisher: Publisher
    replies: ReplyCollector
    gen: HostileGenerator
    reset: Callable[[], None]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def valid_calls(self) -> float | None:
        """A valid call to every server's directed queue; the slowest answer, None if one is missing."""
        slowest = 0.0
        for s in self.fleet.servers:
            req, msg_id = self.gen.request(*s.barrier)
            start = time.monotonic()
            self.publisher.publish(Probe("valid", envelope(req), s.directed, msg_id))
            if not self.replies.wait_for(msg_id, BARRIER_TIMEOUT):
                return None
            slowest = max(slowest, time.monotonic() - start)
        return slowest

    def run_class(self, cls: str, probes: list[Probe]) -> Row:
        row = Row(cls, sent=len(probes))
        before = self.fleet.state()
        self.fleet.lvm_log_lines()
        start = time.monotonic()
        for probe in probes:
            if probe.expiration is None:
                self.publisher.publish(probe)
            elif not self.publisher.publish_checked(probe):
                row.refused_by_broker += 1
                continue
            if probe.msg_id is not None:
                row.due.add(probe.msg_id)
                row.probes[probe.msg_id] = probe
        self.publisher.check()
        row.valid_call = self.valid_calls()
        row.seconds = time.monotonic() - start
        row.crashes = self.fleet.reap(cls)
        row.changed = state_changes(before, self.fleet.state())
        row.lvm_lines = self.fleet.lvm_log_lines()
        if row.changed:
            try:
                self.reset()
            except oslo_messaging.MessagingException as e:
                self.notes.append(f"could not reset the LVs after {cls}: {type(e).__name__}: {e}")
            self.fleet.lvm_log_lines()  # the reset's own LVM changes are not hostile
        self.rows.append(row)
        print(f"  {cls}: sent {row.sent}, due {len(row.due)}, crashes {row.crashes}, "
              f"state changes {row.state_changes}, valid call {row.valid_call}", flush=True)
        return row

    def finish(self) -> None:
        due = set().union(*(r.due for r in self.rows))
        self.replies.drain(due)
        for r in self.rows:
            r.got = self.replies.answered(r.due)


# ---- the two server kinds ---------------------------------------------------------------------


def agent_args(amqp_url: str, tmp: Path, conf: Path, host: str, host_id: int) -> list[str]:
    return ["--config", str(conf),
            "--set", f"DEFAULT.transport_url={amqp_url}", "--set", f"DEFAULT.host={host}",
            "--set", "agent.lvm_backend=simulated", "--set", f"agent.simulated_state_file={tmp / 'cluster.json'}",
            "--set", f"agent.volume_groups={VG}", "--set", f"agent.state_dir={tmp / host}",
            "--set", "agent.announce_interval=1", "--set", "agent.pv_wait_timeout=0",
            "--host-id", str(host_id)]


@dataclass
class Names:
    tag: str
    host_a: str
    host_b: str
    controller: str
    lvs: dict[str, str]  # role -> LV name

    @classmethod
    def fresh(cls) -> Names:
        tag = uuid.uuid4().hex[:8]
        roles = ("ex_a", "ex_b", "shared", "off1", "off2")
        return cls(tag, f"hostile-a-{tag}", f"hostile-b-{tag}", f"hostile-ctl-{tag}",
                   {r: f"volume-{r.replace('_', '-')}-{tag}" for r in roles})


def prepare_lvs(client_for: Callable[[str], Any], n: Names) -> None:
    """Pre-created LVs the hostile casts aim at: active exclusive on A and on B, shared, inactive."""
    a, b = client_for(n.host_a), client_for(n.host_b)
    for name in n.lvs.values():
        a.call({}, "create_lv", vg=VG, name=name, size_gb=1)
    a.call({}, "activate_lv", vg=VG, name=n.lvs["ex_a"], mode="exclusive")
    b.call({}, "activate_lv", vg=VG, name=n.lvs["ex_b"], mode="exclusive")
    a.call({}, "activate_lv", vg=VG, name=n.lvs["shared"], mode="shared")
    b.call({}, "activate_lv", vg=VG, name=n.lvs["shared"], mode="shared")


def reset_lvs(client_for: Callable[[str], Any], n: Names) -> None:
    """Every LV of this run deleted and the pre-created ones made again: the next class starts
    from the same state, so a change is counted where it happened."""
    clients = [client_for(n.host_a), client_for(n.host_b)]
    for lv in clients[0].call({}, "list_lvs", vg=VG)["lvs"]:
        if not lv["name"].endswith(n.tag):
            continue
        for client in clients:
            client.call({}, "deactivate_lv", vg=VG, name=lv["name"])
        clients[0].call({}, "delete_lv", vg=VG, name=lv["name"], volume_clear="none")
    prepare_lvs(client_for, n)


def agent_surface(n: Names) -> Surface:
    lv = n.lvs
    new = f"volume-new-{n.tag}"
    absent = f"absent-{n.tag}"
    mutating = (
        ("deactivate_lv", {"vg": VG, "name": lv["ex_a"]}), ("deactivate_lv", {"vg": VG, "name": lv["ex_b"]}),
        ("deactivate_lv", {"vg": VG, "name": lv["shared"]}), ("delete_lv", {"vg": VG, "name": lv["off1"]}),
        ("create_lv", {"vg": VG, "name": new, "size_gb": 1}),
        ("activate_lv", {"vg": VG, "name": lv["off2"], "mode": "exclusive"}),
        ("activate_lv", {"vg": VG, "name": lv["off1"], "mode": "shared"}),
        ("extend_lv", {"vg": VG, "name": lv["off1"], "size_gb": 2}),
        ("recover", {"vg": VG, "step": "deactivate"}), ("start_lockspace", {"vg": VG}),
        ("copy_lv", {"vg": VG, "source": lv["off2"], "target": f"volume-copy-{n.tag}"}),
        ("release_lv", {"vg": VG, "name": lv["off1"], "host": n.host_b}),
    )
    specs = (
        *(ArgSpec("release_lv", {"vg": VG, "name": lv["off1"], "host": n.host_b}, a, k)
          for a, k in (("host", "host"), ("name", "name"), ("vg", "vg"))),
        *(ArgSpec("copy_lv", {"vg": VG, "source": lv["off2"], "target": f"volume-copy-{n.tag}"}, a, k)
          for a, k in (("source", "name"), ("target", "name"), ("vg", "vg"))),
        ArgSpec("copy_lv", {"vg": VG, "source": lv["off2"], "target": f"volume-copy-{n.tag}", "size_bytes": 1 << 30},
                "size_bytes", "size"),
        ArgSpec("copy_lv", {"vg": VG, "source": lv["off2"], "target": f"volume-copy-{n.tag}", "verify": True},
                "verify", "bool"),
        *(ArgSpec("create_lv", {"vg": VG, "name": new, "size_gb": 1}, a, k)
          for a, k in (("name", "name"), ("vg", "vg"), ("size_gb", "size"))),
        ArgSpec("create_lv", {"vg": VG, "name": new, "size_bytes": 1 << 30}, "size_bytes", "size"),
        *(ArgSpec("activate_lv", {"vg": VG, "name": lv["off2"], "mode": "exclusive"}, a, k)
          for a, k in (("name", "name"), ("vg", "vg"), ("mode", "mode"))),
        *(ArgSpec("deactivate_lv", {"vg": VG, "name": lv["ex_a"]}, a, k) for a, k in (("name", "name"), ("vg", "vg"))),
        *(ArgSpec("delete_lv", {"vg": VG, "name": lv["off1"]}, a, k)
          for a, k in (("name", "name"), ("vg", "vg"), ("volume_clear", "clear"),
                       ("volume_clear_size_mb", "clear_mb"))),
        *(ArgSpec("extend_lv", {"vg": VG, "name": lv["off1"], "size_gb": 2}, a, k)
          for a, k in (("size_gb", "size"), ("shared_update", "bool"), ("name", "name"))),
        ArgSpec("lv_info", {"vg": VG, "name": lv["ex_a"]}, "name", "name"),
        ArgSpec("list_lvs", {"vg": VG}, "vg", "vg"),
        ArgSpec("start_lockspace", {"vg": VG}, "vg", "vg"),
        ArgSpec("recover", {"vg": VG, "step": "deactivate"}, "step", "step"),
        ArgSpec("recover", {"vg": VG, "step": "deactivate"}, "vg", "vg"),
    )
    return Surface(
        kind="agent",
        routes=(Route("directed", "openstack", f"aos-agent.{n.host_a}"),
                Route("directed", "openstack", f"aos-agent.{n.host_b}"),
                Route("topic", "openstack", "aos-agent"),
                Route("fanout", "aos-agent_fanout", "aos-agent")),
        read_calls=(("health", {}), ("list_lvs", {"vg": VG}), ("vg_info", {"vg": VG}), ("lock_status", {}),
                    ("lv_info", {"vg": VG, "name": lv["ex_a"]}), ("lv_info", {"vg": VG, "name": lv["off1"]}),
                    ("list_jobs", {})),
        mutating_calls=mutating,
        arg_specs=specs,
        absent_calls=(("deactivate_lv", {"vg": VG, "name": absent}), ("delete_lv", {"vg": VG, "name": absent}),
                      ("lv_info", {"vg": VG, "name": absent}), ("job_info", {"id": absent}),
                      ("cancel_job", {"id": absent})),
        foreign_queues=("aos-controller", "aos-agent", f"aos-agent.{n.host_b}", f"aos-agent.{n.host_a}"),
        no_mutation_routes=("topic", "fanout"),
    )


def controller_surface(n: Names, reports: dict[str, dict[str, Any]]) -> Surface:
    lv = n.lvs
    new = f"volume-new-{n.tag}"
    absent = f"absent-{n.tag}"
    mutating = (
        ("deactivate_volume", {"name": lv["ex_a"], "host": n.host_a}),
        ("deactivate_volume", {"name": lv["shared"], "host": n.host_b}),
        ("delete_volume", {"name": lv["off1"]}), ("create_volume", {"name": new, "size_gb": 1}),
        ("activate_volume", {"name": lv["off2"], "host": n.host_b, "mode": "exclusive"}),
        ("extend_volume", {"name": lv["off1"], "size_gb": 2, "vg": VG}),
        ("copy_volume", {"source": lv["off2"], "target": f"volume-copy-{n.tag}"}),
    )
    copy = {"source": lv["off2"], "target": f"volume-copy-{n.tag}", "vg": VG}
    specs = (
        *(ArgSpec("copy_volume", copy, a, k)
          for a, k in (("source", "name"), ("target", "name"), ("vg", "vg_optional"))),
        ArgSpec("copy_volume", {**copy, "size_gb": 2}, "size_gb", "size"),
        ArgSpec("copy_volume", {**copy, "verify": True}, "verify", "bool"),
        ArgSpec("copy_volume", {**copy, "host": n.host_a}, "host", "host_optional"),
        ArgSpec("list_jobs", {"host": n.host_a}, "host", "host_optional"),
        *(ArgSpec("create_volume", {"name": new, "size_gb": 1, "vg": VG}, a, k)
          for a, k in (("name", "name"), ("vg", "vg_optional"), ("size_gb", "size"))),
        ArgSpec("create_volume", {"name": new, "size_bytes": 1 << 30}, "size_bytes", "size"),
        *(ArgSpec("activate_volume", {"name": lv["off2"], "host": n.host_a, "mode": "exclusive", "vg": VG}, a, k)
          for a, k in (("name", "name"), ("host", "host"), ("mode", "mode"), ("vg", "vg_optional"))),
        *(ArgSpec("deactivate_volume", {"name": lv["ex_a"], "host": n.host_a, "vg": VG}, a, k)
          for a, k in (("name", "name"), ("host", "host"), ("vg", "vg_optional"))),
        *(ArgSpec("delete_volume", {"name": lv["off1"], "vg": VG}, a, k)
          for a, k in (("name", "name"), ("vg", "vg_optional"), ("volume_clear", "clear"),
                       ("volume_clear_size_mb", "clear_mb"))),
        *(ArgSpec("extend_volume", {"name": lv["off1"], "size_gb": 2}, a, k)
          for a, k in (("size_gb", "size"), ("name", "name"))),
        ArgSpec("lock_status", {"host": n.host_a}, "host", "host"),
        ArgSpec("get_volume", {"name": lv["ex_a"]}, "name", "name"),
        ArgSpec("list_volumes", {"vg": VG}, "vg", "vg_optional"),
    )
    return Surface(
        kind="controller",
        routes=(Route("topic", "openstack", "aos-controller"),
                Route("directed", "openstack", f"aos-controller.{n.controller}"),
                Route("fanout", "aos-controller_fanout", "aos-controller")),
        read_calls=(("list_agents", {}), ("list_volumes", {"vg": VG}), ("pool_stats", {"vg": VG}),
                    ("get_volume", {"name": lv["ex_a"]}), ("lock_status", {"host": n.host_a}),
                    ("get_volume", {"name": lv["off1"], "vg": VG}), ("list_jobs", {})),
        mutating_calls=mutating,
        arg_specs=specs,
        absent_calls=(("deactivate_volume", {"name": absent, "host": n.host_a}), ("delete_volume", {"name": absent}),
                      ("get_volume", {"name": absent}), ("job_info", {"id": absent}),
                      ("cancel_job", {"id": absent, "host": n.host_a})),
        foreign_queues=("aos-agent", f"aos-agent.{n.host_a}", "aos-controller", f"aos-controller.{n.controller}"),
        announce=AnnounceSpec(reports=reports, now=time.time(), phantom_prefix=f"phantom-{n.tag}-"),
    )


@dataclass
class Setup:
    fleet: Fleet
    surface: Surface
    final_call: Callable[[], Any]
    post_checks: Callable[[], list[str]]
    reset: Callable[[], None]


def oslo_client(transport: Any, topic: str, server: str | None = None, timeout: float = 30) -> Any:
    target = oslo_messaging.Target(topic=topic, server=server, version="1.0")
    return oslo_messaging.get_rpc_client(transport, target, timeout=timeout)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)  # polling interval, not synchronisation


def build_setup(kind: str, spawn: Callable[..., Any], amqp_url: str, tmp: Path, transport: Any) -> Setup:
    n = Names.fresh()
    conf = tmp / "empty.conf"  # keeps /etc/aos/aos.conf out
    conf.write_text("")

    def agent(host: str, host_id: int) -> Callable[[], Any]:
        return lambda: spawn("aos-agent", *agent_args(amqp_url, tmp, conf, host, host_id),
                             ready=f"READY host={host}", timeout=60)

    servers = [Server("agent A", agent(n.host_a, 1), Route("directed", "openstack", f"aos-agent.{n.host_a}"),
                      ("health", {})),
               Server("agent B", agent(n.host_b, 2), Route("directed", "openstack", f"aos-agent.{n.host_b}"),
                      ("health", {}))]
    if kind == "controller":
        servers.append(Server(
            "controller",
            lambda: spawn("aos-controller", "--config", str(conf), "--set", f"DEFAULT.transport_url={amqp_url}",
                          "--set", f"DEFAULT.host={n.controller}", "--set", "controller.agent_stale_after=10",
                          "--set", "controller.agent_down_after=20",
                          "--set", "controller.agent_response_timeout=30", ready="READY", timeout=30),
            Route("directed", "openstack", f"aos-controller.{n.controller}"), ("list_agents", {}), is_agent=False))
    fleet = Fleet(servers, tmp / "cluster.json")
    fleet.launch()
    def agent_client(host: str) -> Any:
        return oslo_client(transport, "aos-agent", host, timeout=FINAL_CALL_TIMEOUT)

    prepare_lvs(agent_client, n)

    def reset() -> None:
        reset_lvs(agent_client, n)

    if kind == "agent":
        client = agent_client(n.host_a)
        return Setup(fleet, agent_surface(n), lambda: client.call({}, "list_lvs", vg=VG), list, reset)
    ctl = oslo_client(transport, "aos-controller", timeout=FINAL_CALL_TIMEOUT)
    hosts = {n.host_a, n.host_b}
    wait_until(lambda: hosts <= {a["host"] for a in ctl.call({}, "list_agents")["agents"]}, 30,
               "the controller to see both agents")
    reports = {h: oslo_client(transport, "aos-agent", h).call({}, "health") for h in sorted(hosts)}

    def post_checks() -> list[str]:
        return announce_problems(ctl, agent_client, n)

    return Setup(fleet, controller_surface(n, reports), lambda: ctl.call({}, "list_volumes", vg=VG), post_checks,
                 reset)


VIEW_KEYS = ("host_id", "ready", "vgs", "instance_id")
VIEW_SETTLE = 5.0  # agents announce every second: a sound view matches them within this


def view_mismatches(ctl: Any, agent_client: Callable[[str], Any], host: str) -> list[str]:
    """Where the controller's view of `host` differs from what its agent says now."""
    entry = next((a for a in ctl.call({}, "list_agents")["agents"] if a["host"] == host), None)
    if entry is None:
        return ["missing from list_agents"]
    own = agent_client(host).call({}, "health")
    wrong = [f"{k}={entry.get(k)!r} (agent: {own.get(k)!r})"
             for k in VIEW_KEYS if k in entry and entry[k] != own.get(k)]
    return wrong + ([f"status {entry['status']}"] if entry.get("status") != "alive" else [])


def announce_problems(ctl: Any, agent_client: Callable[[str], Any], n: Names) -> list[str]:
    """After forged announcements: no phantom host; the controller's view of each real agent
    matches the agent within VIEW_SETTLE s; lock_status through the controller reaches it."""
    try:
        seen = {a["host"] for a in ctl.call({}, "list_agents")["agents"]}
        phantoms = sorted(h for h in seen if h.startswith(f"phantom-{n.tag}-"))
        problems = [f"forged announcements accepted: {len(phantoms)} phantom hosts in list_agents"] if phantoms else []
        for host in (n.host_a, n.host_b):
            deadline = time.monotonic() + VIEW_SETTLE
            while (wrong := view_mismatches(ctl, agent_client, host)) and time.monotonic() < deadline:
                time.sleep(0.5)  # polling interval, not synchronisation
            if wrong:
                problems.append(f"forged announcements stick: the controller's view of {host}: {', '.join(wrong)}")
            try:
                ctl.call({}, "lock_status", host=host)
            except oslo_messaging.RemoteError as e:
                problems.append(f"forged announcements locked {host} out: lock_status -> {e.exc_type}: {e.value}")
    except oslo_messaging.MessagingException as e:
        problems = [f"forged announcements not judged: {type(e).__name__}: {e}"]
    return problems


# ---- the test ----------------------------------------------------------------------------------


@pytest.fixture
def hostile_io(hostile_url: str) -> Iterator[tuple[Publisher, ReplyCollector]]:
    login = Login.parse(hostile_url)
    replies = ReplyCollector(login)
    publisher = Publisher(login)
    try:
        yield publisher, replies
    finally:
        publisher.close()
        replies.close()


def flood(run: Run, announce_checks: Callable[[], list[str]]) -> list[str]:
    """Every class in turn; the forged announcements are judged before the classes that can stall
    a server. Returns what those checks found."""
    for cls, make in CLASSES.items():
        probes = make(run.gen)
        if probes:
            run.run_class(cls, probes)
    problems = announce_checks()
    mutations = max(MIN_MUTATIONS, MIN_MESSAGES - sum(r.sent for r in run.rows) - 200)
    run.run_class("mutations", run.gen.mutations(mutations))
    for cls, make in LATE_CLASSES.items():
        run.run_class(cls, make(run.gen))
    return problems


def timed_final_call(call: Callable[[], Any]) -> tuple[float | None, str]:
    start = time.monotonic()
    try:
        call()
    except (oslo_messaging.MessagingException, OSError) as e:  # the finding: say it
        return None, f"{type(e).__name__}: {e}"
    return time.monotonic() - start, ""


def silent_examples(replies: ReplyCollector, row: Row, limit: int = 3) -> str:
    """The first few unanswered probes, route and body, so a failure can be reproduced by hand."""
    missing = [m for m in sorted(row.due) if not replies.answered({m})][:limit]
    return "".join(f"\n    {row.probes[m].route} {row.probes[m].body[:600]!r}" for m in missing)


def verdict(run: Run, final: float | None, final_error: str, post: list[str]) -> list[str]:
    rows = run.rows
    failures = list(run.fleet.crashes)
    if run.replies.error:
        failures.append(f"our reply consumer lost its connection, reply counts are incomplete: {run.replies.error}")
    changed = [f"{r.cls}: {r.state_changes} LV state changes {r.changed[:4]}, {r.lvm_lines} LVM log lines"
               for r in rows if r.state_changes or r.lvm_lines]
    if changed:
        failures.append("LVM changed by hostile input (issue 11 wants 0):\n  " + "\n  ".join(changed))
    silent = [f"{r.cls}: {r.silent} of {len(r.due)}" + silent_examples(run.replies, r) for r in rows if r.silent]
    if silent:
        failures.append("SILENT CALLERS (known bug until issue 11's fix; wants 0):\n  " + "\n  ".join(silent))
    if final is None:
        failures.append(f"the valid call after the flood was not answered within {FINAL_CALL_TIMEOUT}s: "
                        f"{final_error}")
    stalled = [r.cls for r in rows if r.valid_call is None]
    if stalled:
        failures.append(f"valid calls unanswered within {BARRIER_TIMEOUT}s after: {', '.join(stalled)}")
    return failures + post


@pytest.mark.parametrize("kind", ["agent", "controller"])
def test_hostile_traffic(kind: str, spawn: Callable[..., Any], amqp_url: str, tmp_path: Path,
                         oslo_transport: Any, hostile_io: tuple[Publisher, ReplyCollector],
                         hostile_seed: int, hostile_url: str) -> None:
    publisher, replies = hostile_io
    setup = build_setup(kind, spawn, amqp_url, tmp_path, oslo_transport)
    gen = HostileGenerator(setup.surface, replies.queue, random.Random(hostile_seed))
    run = Run(kind, setup.fleet, publisher, replies, gen, setup.reset)
    print(f"hostile traffic against the {kind} as broker user {publisher.user!r}:", flush=True)
    post = flood(run, setup.post_checks)
    run.finish()
    final, final_error = timed_final_call(setup.final_call)
    run.fleet.reap("the final checks")
    answer = "not answered" if final is None else f"{final * 1000:.0f} ms"
    extra = [f"valid oslo.messaging call after the flood: {answer} (issue 11 wants < 1 s)",
             f"replies that named no msg id we know: {replies.unmatched}",
             f"seed {hostile_seed}, broker user {Login.parse(hostile_url).user!r}", *run.notes, *post]
    table = format_table(kind, run.rows, extra)
    (tmp_path / f"hostile-{kind}.txt").write_text(table + "\n")
    print("\n" + table + f"\n(written to {tmp_path / f'hostile-{kind}.txt'})")
    assert sum(r.sent for r in run.rows) >= MIN_MESSAGES
    failures = verdict(run, final, final_error, post)
    assert not failures, "\n\n".join(failures)


def test_hostile_generator_is_reproducible_and_marks_answers_due() -> None:
    """The generator alone (no broker): same seed, same bytes; an answer is due exactly when the
    bytes still name our reply queue and the probe's msg id."""
    surface = agent_surface(Names.fresh())

    def probes(seed: int) -> list[Probe]:
        gen = HostileGenerator(surface, "reply_0123", random.Random(seed))
        return [*gen.truncated_json(), *gen.invalid_json(), *gen.mutating_casts(), *gen.mutations(300)]

    first, again = probes(7), probes(7)
    assert [p.body for p in first] == [p.body for p in again]
    assert [p.body for p in first] != [p.body for p in probes(8)]
    assert all(p.msg_id is None for p in first if p.cls == "mutating_casts")
    due = [(p.msg_id, p.body) for p in first if p.msg_id is not None]
    assert due and all(msg_id.encode() in body and b"reply_0123" in body for msg_id, body in due)
    assert any(p.msg_id is None for p in first if p.cls == "truncated_json")
    body = envelope({"method": "health", "args": {}, "_msg_id": "ab12", "_reply_q": "reply_0123"})
    assert names_reply(body, "ab12", "reply_0123")
    assert not names_reply(body, "ab12", "reply_01")
    assert not names_reply(body[: body.index(b"reply_0123") + 6], "ab12", "reply_0123")
    assert not names_reply(body.replace(b"_reply_q", b"_reply_x"), "ab12", "reply_0123")
