"""Hostile RPC traffic for the trust-boundary suite (issue 11).

Pure generation, no I/O: `HostileGenerator(surface, reply_queue, rng)` turns a `Surface` (what
one server kind offers: its routes, valid calls, pre-created LVs) into `Probe`s, one list per
message class (`CLASSES`). `Tests/interop/test_hostile_traffic.py` publishes them and judges
the servers.

A probe "names a reply queue" when its bytes still carry our reply queue's name and its own
`_msg_id` in the oslo form (`"_reply_q": "reply_…"`, also with the escaped quotes of the
envelope's inner string): a tolerant scan of the message finds both, so the server can and
must answer. Such a probe has `msg_id` set; the others expect no reply. Requests the server
may legitimately drop as expired (`expiration` 0 or 1 ms) never expect a reply.

Everything random comes from the one `random.Random` passed in (ids included), so a seed
reproduces a run's message bytes, apart from the per-run reply queue and host names.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

JSON_CT = "application/json"
Json = Any
Call = tuple[str, dict[str, Json]]


@dataclass(frozen=True)
class Route:
    """Where a probe is published: an exchange and routing key; `name` is for the table."""

    name: str
    exchange: str
    routing_key: str


@dataclass
class Probe:
    cls: str
    body: bytes
    route: Route
    msg_id: str | None = None  # set when the probe names our reply queue: an answer is due
    content_type: str | None = JSON_CT
    content_encoding: str | None = "utf-8"
    expiration: str | None = None


@dataclass(frozen=True)
class ArgSpec:
    """A mutating or read call with one argument to spoil: `valid` has every argument right."""

    method: str
    valid: dict[str, Json]
    arg: str
    kind: str  # a key of BAD_VALUES


@dataclass(frozen=True)
class Surface:
    """What one server kind (agent, controller) exposes to hostile traffic."""

    kind: str
    routes: tuple[Route, ...]
    read_calls: tuple[Call, ...]  # valid, read-only: seeds and probes that must be answered
    mutating_calls: tuple[Call, ...]  # valid requests that would change pre-created LVs
    arg_specs: tuple[ArgSpec, ...]
    absent_calls: tuple[Call, ...]  # mutating methods on LVs that do not exist: no-ops
    foreign_queues: tuple[str, ...]  # other servers' queues, given as `_reply_q`
    # Routes where even a well-formed call must not change anything (fanout; the agents' shared
    # topic: they mutate only for calls on their directed queue).
    no_mutation_routes: tuple[str, ...] = ("fanout",)
    announce: AnnounceSpec | None = None


@dataclass(frozen=True)
class AnnounceSpec:
    """The controller's view of the agents: real reports to forge from (host -> report)."""

    reports: dict[str, dict[str, Json]]
    now: float
    phantom_prefix: str


# ---- hostile values --------------------------------------------------------------------------

NAME_BAD: tuple[Json, ...] = (
    "", ".", "..", "-x", "--help", "-", "a/b", "../x", "../../etc/passwd", "vg1/lv", "/dev/sda",
    "a b", "a;b", "$(reboot)", "`id`", "volume-\u00e9", "vol\u202eume", "\ud800", "x\u0000y",
    "\u001b[2J", "line\nbreak", "tab\tname", "x" * 128, "x" * 10240, "snapshot", "pvmove1", "x_tmeta", "lvmlock",
    "\uff0e\uff0e", "%2e%2e", "\\", "*", "?",
)
TYPE_BAD: tuple[Json, ...] = (5, -1, 1.5, 1e300, True, False, [], ["ok"], {}, {"name": "ok"}, 2**64)
SIZE_BAD: tuple[Json, ...] = (
    "1", "1024", 1.5, 0.5, True, False, 2**64, 2**200, 2**63, 2**63 - 1, 2**62, -1, 0, -(2**63), 1e300,
    -1e300, 1e-300, "nan", "inf", [], {}, [1], "\u0661",
)
MODE_BAD: tuple[Json, ...] = ("ex", "", "EXCLUSIVE", "exclusive ", "shared\u0000", "sh", 1, True, [], {}, "x" * 10240)
BOOL_BAD: tuple[Json, ...] = ("yes", "true", 1, 0, "1", [], {}, 2**64)
CLEAR_BAD: tuple[Json, ...] = ("wipe", "SHRED", "", "ZERO", "zero\u0000", 1, True, [], {})
CLEAR_MB_BAD: tuple[Json, ...] = (-1, "1", 1.5, 1e300, 2**64, 2**63, True, [], {})
HOST_BAD: tuple[Json, ...] = ("", "a b", "x" * 300, "\u0000", "h\u00e9", 5, True, [], {}, "x" * 10240)
BAD_VALUES: dict[str, tuple[Json, ...]] = {
    "name": NAME_BAD + TYPE_BAD + (None,),
    "vg": NAME_BAD + TYPE_BAD + (None,),
    "vg_optional": NAME_BAD + TYPE_BAD,  # null means "omitted" there: not a bad value
    "size": SIZE_BAD,
    "mode": MODE_BAD,
    "bool": BOOL_BAD,
    "clear": CLEAR_BAD,
    "clear_mb": CLEAR_MB_BAD,
    "host": HOST_BAD + (None,),
    "host_optional": HOST_BAD,  # null means "omitted" there: not a bad value
    "step": MODE_BAD,
}
TIMEOUT_BAD: tuple[Json, ...] = (
    "nan", "inf", "-inf", 1e300, -1e300, 2**63 - 1, 2**63, 2**64, 2**200, -1, 0, "abc", "", "60", True, [], {},
    1e-300, -0.0,
)
# Raw JSON tokens Python's json would never write for a float.
TIMEOUT_TOKENS: tuple[str, ...] = ("NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" + "0" * 400)
EXPIRATION_ODD: tuple[str, ...] = ("4294967295", "4294967294", "2147483648", "+60000", "0060000", "86400000000")
EXPIRATION_EXPIRED: tuple[str, ...] = ("0", "1", "-0")  # "-0" is 0 ms: expired on arrival
EXPIRATION_GARBAGE: tuple[str, ...] = (
    "abc", "-1", "1e3", "nan", "inf", "99999999999999999999", " ", "60000 ", "6e4", "0x10", "1.5", "\u0661",
    "18446744073709551616",
)
ENVELOPE_VERSIONS: tuple[Json, ...] = ("1.0", "3.0", "2.1", "2", "", "2.0\u0000", " 2.0", 2.0, 2, None, True, [], {})
NO_VERSION = object()  # an envelope without "oslo.version" at all
CONTENT_TYPES: tuple[str | None, ...] = (
    "text/plain", "application/octet-stream", "", None, "application/json; charset=latin1", "APPLICATION/JSON",
    "application/x-msgpack", "x" * 255,
)
CONTENT_ENCODINGS: tuple[str | None, ...] = ("gzip", "zlib", "utf-16", "latin1", "", None, "x" * 255)
UNKNOWN_METHODS: tuple[Json, ...] = (
    "no_such_method", "create_lv2", "CREATE_LV", "create_lv ", "create-lv", "createLV", "", " ", "\u0000",
    "deactivate_lv\u0000", "x" * 10240, "health\n", "__init__", "init", "dispatch", "handle", "\u00e9",
    "create_volume_", "list_agents()", "../health",
)
PRIVATE_METHODS: tuple[str, ...] = (
    "_", "__", "_handle", "_dispatch", "_create_lv", "_delete_lv", "_recover", "__class__", "__init__", "_reply",
    "_announce", "_agent_announce", "_fence", "__dict__",
)
NON_STRING_METHODS: tuple[Json, ...] = (5, 0, -1, 1.5, 1e300, None, True, False, [], ["health"], {}, {"name": "health"})
NON_OBJECT_ARGS: tuple[Json, ...] = ([], ["vg1", "x"], "x", "", 5, 1.5, None, True, [{}], "{}")
NOT_STRING_MESSAGES: tuple[str, ...] = ("object", "list", "number", "null", "bool", "nested")
UNKNOWN_ARG_NAMES: tuple[str, ...] = (
    "force", "size_gb_", "__proto__", "_context", "args", "method", "Name", "name ", "", "\u0000", "x" * 10240,
    "host_id", "dry_run",
)
INTERESTING: tuple[bytes, ...] = (
    b'"', b"\\", b"{", b"}", b"[", b"]", b",", b":", b"null", b"1e999", b"-", b"\x00", b"\\u0000", b"\\ud800",
    b"\xff", b"\xc3", b"\\\\\\", b'\\"', b"NaN", b"0" * 40, b"[" * 64, b'{"a":' * 64,
)


# ---- encoding --------------------------------------------------------------------------------


def dumps(obj: Json, *, ascii_only: bool = True) -> str:
    """Python's oslo-compatible JSON (NaN/Infinity for such floats, as json writes them)."""
    return json.dumps(obj, ensure_ascii=ascii_only)


def envelope(inner: Json, version: Json = "2.0") -> bytes:
    """The oslo 2.0 envelope; `inner` is the request (serialised into the string) or a str."""
    text = inner if isinstance(inner, str) else dumps(inner)
    return dumps({"oslo.version": version, "oslo.message": text}).encode()


# JSON's whitespace only (regex `\s` also takes form feed and vertical tab, which a server's
# scan rightly does not skip: CI seed 2360828708 put a form feed before a msg id's quote).
JSON_SPACE = rb"[ \t\r\n]*"


def names_reply(body: bytes, msg_id: str, reply_queue: str) -> bool:
    """True when a tolerant scan of `body` finds this msg id and reply queue as oslo keys."""
    return has_key(body, b"_msg_id", msg_id) and has_key(body, b"_reply_q", reply_queue)


def strict_reply_target(body: bytes) -> tuple[Json, Json] | None:
    """(`_msg_id`, `_reply_q`) of a body that is a well-formed oslo 2.0 envelope around a JSON
    object (no NaN, no lone surrogates, no repeated key at the top), None when it is not one.

    For such a body the server parses exactly what Python parses, so the answer due is known
    without guessing: a mutation that turned `"_msg_id"` into `"\\"_msg_id"` left a cast, and
    no reply is due although the bytes still look like the key to a scan."""
    def refuse(_: str) -> Json:
        raise ValueError("not strict JSON")

    def pairs(items: list[tuple[str, Json]]) -> dict[str, Json]:
        keys = [k for k, _ in items]
        if len(set(keys)) != len(keys):
            raise ValueError("repeated key")
        for k, v in items:  # a lone surrogate does not survive UTF-8: the server's parser differs
            for text in (k, v if isinstance(v, str) else ""):
                text.encode("utf-8")
        return dict(items)
    try:
        outer = json.loads(body, parse_constant=refuse, object_pairs_hook=pairs)
        if not isinstance(outer, dict) or set(outer) != {"oslo.version", "oslo.message"}:
            return None
        if outer["oslo.version"] != "2.0" or not isinstance(outer["oslo.message"], str):
            return None
        inner = json.loads(outer["oslo.message"], parse_constant=refuse, object_pairs_hook=pairs)
    except (ValueError, UnicodeError, RecursionError):
        return None
    if not isinstance(inner, dict):
        return None
    return inner.get("_msg_id"), inner.get("_reply_q")


def names_reply_once(body: bytes, msg_id: str, reply_queue: str) -> bool:
    """`names_reply`, and each key appears once: a mutation that copied a key elsewhere leaves
    it open which copy a parser keeps (JSON's last one wins), so no particular answer is due.
    A body that parses strictly is judged by what it says, not by a scan."""
    target = strict_reply_target(body)
    if target is not None:
        return target == (msg_id, reply_queue)

    def count(key: bytes) -> int:
        return len(re.findall(rb'\\?"' + re.escape(key) + rb'\\?"' + JSON_SPACE + b":", body))
    return count(b"_msg_id") == 1 and count(b"_reply_q") == 1 and names_reply(body, msg_id, reply_queue)


def has_key(body: bytes, key: bytes, value: str) -> bool:
    """`"key": "value"` somewhere in body, also with the escaped quotes of an inner string."""
    needle = value.encode() + b'\\"'  # value then its closing quote, escaped …
    key_before = re.compile(rb'\\?"' + re.escape(key) + rb'\\?"' + JSON_SPACE + b":" + JSON_SPACE + rb'\\?"$')
    for closing in (needle, value.encode() + b'"'):  # … or plain
        start = 0
        while (i := body.find(closing, start)) >= 0:
            if key_before.search(body[max(0, i - len(key) - 16):i]):
                return True
            start = i + 1
    return False


# ---- the generator ---------------------------------------------------------------------------


@dataclass
class HostileGenerator:
    surface: Surface
    reply_queue: str
    rng: random.Random
    counts: dict[str, int] = field(default_factory=dict)

    # -- building blocks

    def hex_id(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def route(self) -> Route:
        return self.rng.choice(self.surface.routes)

    def request(self, method: Json, args: Json, *, reply: bool = True,
                extra: dict[str, Json] | None = None, ids_first: bool = False) -> tuple[dict[str, Json], str]:
        """An oslo request dict (ids last, as oslo adds them, unless ids_first) and its msg id."""
        msg_id = self.hex_id()
        ids = {"_msg_id": msg_id, "_reply_q": self.reply_queue} if reply else {}
        req: dict[str, Json] = dict(ids) if ids_first else {}
        req.update({"method": method, "args": args, "version": "1.0",
                    "_context_request_id": f"req-{self.hex_id()}", "_unique_id": self.hex_id()})
        req.update(extra or {})
        req.update(ids)
        return req, msg_id

    def probe(self, cls: str, body: bytes, msg_id: str | None, route: Route | None = None,
              **props: Any) -> Probe:
        """A probe that expects an answer only if its bytes still name our reply queue and msg id."""
        due = msg_id if msg_id is not None and names_reply(body, msg_id, self.reply_queue) else None
        return Probe(cls=cls, body=body, route=route or self.route(), msg_id=due, **props)

    def call_probe(self, cls: str, method: Json, args: Json, *, reply: bool = True,
                   extra: dict[str, Json] | None = None, route: Route | None = None) -> Probe:
        req, msg_id = self.request(method, args, reply=reply, extra=extra)
        return self.probe(cls, envelope(req), msg_id, route)

    def valid_body(self, call: Call, *, reply: bool = True) -> tuple[bytes, str]:
        req, msg_id = self.request(call[0], call[1], reply=reply)
        return envelope(req), msg_id

    def pick(self, calls: tuple[Call, ...]) -> Call:
        return self.rng.choice(calls)

    def read_request(self) -> tuple[dict[str, Json], str]:
        """The request of a read-only call picked at random, with our reply queue, and its msg id."""
        return self.request(*self.pick(self.surface.read_calls))

    def each_route(self) -> tuple[Route, ...]:
        return self.surface.routes

    # -- classes (each returns its probes)

    def timeout_values(self) -> list[Probe]:
        probes = []
        for _ in range(8):
            for value in TIMEOUT_BAD:
                call = self.pick(self.surface.read_calls + self.surface.absent_calls)
                probes.append(self.call_probe("_timeout", call[0], call[1], extra={"_timeout": value}))
            for token in TIMEOUT_TOKENS:
                call = self.pick(self.surface.read_calls)
                req, msg_id = self.request(call[0], call[1], extra={"_timeout": "@T@"})
                inner = dumps(req).replace('"@T@"', token)
                probes.append(self.probe("_timeout", envelope(inner), msg_id))
        return probes

    def expiration(self) -> list[Probe]:
        probes = []
        for _ in range(15):
            for value in EXPIRATION_ODD + EXPIRATION_GARBAGE:
                body, msg_id = self.valid_body(self.pick(self.surface.read_calls))
                probes.append(self.probe("expiration", body, msg_id, expiration=value))
            for value in EXPIRATION_EXPIRED:  # may be dropped as expired: no answer due
                body, _ = self.valid_body(self.pick(self.surface.read_calls))
                probes.append(Probe("expiration", body, self.route(), expiration=value))
        return probes

    def read_probes(self, cls: str, rounds: int, values: tuple[Any, ...],
                    body: Callable[[dict[str, Json], Any], bytes]) -> list[Probe]:
        """`rounds` times, for each of `values`: a probe of class `cls` whose bytes are
        body(request, value) for a fresh read request."""
        probes = []
        for _ in range(rounds):
            for value in values:
                req, msg_id = self.read_request()
                probes.append(self.probe(cls, body(req, value), msg_id))
        return probes

    def envelope_version(self) -> list[Probe]:
        def body(req: dict[str, Json], version: Any) -> bytes:
            if version is NO_VERSION:
                return dumps({"oslo.message": dumps(req)}).encode()
            return envelope(req, version)
        return self.read_probes("envelope_version", 16, (*ENVELOPE_VERSIONS, NO_VERSION), body)

    def message_not_string(self) -> list[Probe]:
        def body(req: dict[str, Json], shape: str) -> bytes:
            inner: Json = {"object": req, "list": [req], "number": 5, "null": None, "bool": True,
                           "nested": {"oslo.message": dumps(req)}}[shape]
            return dumps({"oslo.version": "2.0", "oslo.message": inner}).encode()
        return self.read_probes("message_not_string", 35, NOT_STRING_MESSAGES, body)

    def invalid_json(self) -> list[Probe]:
        probes = []
        spoilers: tuple[Callable[[str], str], ...] = (
            lambda t: t[:-1] + ",}",
            lambda t: t.replace('"', "'", 2),
            lambda t: t.replace(":", "", 1),
            lambda t: t + "}",
            lambda t: t + " trailing",
            lambda t: "\ufeff" + t,
            lambda t: t.replace('"args"', "args", 1),
            lambda t: t.replace('"version"', '"version\x01"', 1),
            lambda t: t.replace('"1.0"', '"1.0\\q"', 1),
            lambda t: t.replace('"1.0"', '"\\ud800"', 1),
            lambda t: t.replace("{", "{{", 1),
            lambda t: "// comment\n" + t,
        )
        for _ in range(14):
            for spoil in spoilers:
                req, msg_id = self.read_request()
                probes.append(self.probe("invalid_json", envelope(spoil(dumps(req))), msg_id))
                req, msg_id = self.read_request()
                outer = spoil(envelope(req).decode())  # the envelope itself broken
                probes.append(self.probe("invalid_json", outer.encode("utf-8", "surrogatepass"), msg_id))
            req, msg_id = self.read_request()
            probes.append(self.probe("invalid_json", envelope(req) + b"\xff\xfe", msg_id))
            probes.append(self.probe("invalid_json", b"\xff\xfe not json" + envelope(req), msg_id))
        return probes

    def truncated_json(self) -> list[Probe]:
        probes = []
        for i in range(150):  # half with the ids first, so that they survive the cut
            call = self.pick(self.surface.read_calls)
            req, msg_id = self.request(call[0], call[1], ids_first=i % 2 == 0)
            body = envelope(req)
            probes.append(self.probe("truncated_json", body[: self.rng.randrange(len(body))], msg_id))
            req, msg_id = self.request(call[0], call[1], ids_first=i % 2 == 0)
            text = dumps(req)
            probes.append(self.probe("truncated_json", envelope(text[: self.rng.randrange(len(text))]), msg_id))
        return probes

    def deep_nesting(self) -> list[Probe]:
        probes = []
        for depth in (64, 129, 513, 1000, 10_000, 100_000) * 4:
            req, msg_id = self.request("@ARGS@", {})
            text = dumps(req)
            arr = "[" * depth + "]" * depth
            obj = '{"a":' * depth + "1" + "}" * depth
            unclosed = "[" * depth
            for nested in (arr, obj, unclosed):
                probes.append(self.probe("deep_nesting", envelope(text.replace('"@ARGS@"', nested)), msg_id))
                args_nested = text.replace('"args": {}', '"args": {"vg": ' + nested + "}")
                probes.append(self.probe("deep_nesting", envelope(args_nested), msg_id))
            probes.append(Probe("deep_nesting", ("[" * depth).encode(), self.route()))
            probes.append(Probe("deep_nesting", dumps({"oslo.version": "2.0", "oslo.message": "[" * depth}).encode(),
                                self.route()))
        return probes

    def content_type(self) -> list[Probe]:
        probes = []
        for _ in range(16):
            for ct in CONTENT_TYPES:
                body, msg_id = self.valid_body(self.pick(self.surface.read_calls))
                probes.append(self.probe("content_type", body, msg_id, content_type=ct))
            for enc in CONTENT_ENCODINGS:
                body, msg_id = self.valid_body(self.pick(self.surface.read_calls))
                probes.append(self.probe("content_type", body, msg_id, content_encoding=enc))
        return probes

    def missing_method(self) -> list[Probe]:
        probes = []
        for _ in range(200):
            req, msg_id = self.request("x", self.pick(self.surface.read_calls)[1])
            del req["method"]
            probes.append(self.probe("missing_method", envelope(req), msg_id))
        return probes

    def method_not_string(self) -> list[Probe]:
        return [self.call_probe("method_not_string", m, self.pick(self.surface.read_calls)[1])
                for _ in range(17) for m in NON_STRING_METHODS]

    def args_not_object(self) -> list[Probe]:
        probes = [self.call_probe("args_not_object", self.pick(self.surface.mutating_calls)[0], a)
                  for _ in range(18) for a in NON_OBJECT_ARGS]
        for _ in range(20):
            req, msg_id = self.read_request()
            del req["args"]
            probes.append(self.probe("args_not_object", envelope(req), msg_id))
        return probes

    def wrong_arg_types(self) -> list[Probe]:
        probes = []
        for _ in range(2):
            for spec in self.surface.arg_specs:
                for value in BAD_VALUES[spec.kind]:
                    args = dict(spec.valid)
                    args[spec.arg] = value
                    probes.append(self.call_probe("wrong_arg_types", spec.method, args))
        # Raw UTF-8 (not \u escapes) and lone surrogates written raw: the byte-level decoder.
        for spec in self.surface.arg_specs[:20]:
            for value in ("volume-\u00e9\u4e2d", "\U0001f4a3"):
                args = dict(spec.valid)
                args[spec.arg] = value
                req, msg_id = self.request(spec.method, args)
                body = dumps({"oslo.version": "2.0", "oslo.message": dumps(req, ascii_only=False)},
                             ascii_only=False).encode()
                probes.append(self.probe("wrong_arg_types", body, msg_id))
        return probes

    def unknown_args(self) -> list[Probe]:
        probes = []
        for _ in range(4):
            for call in self.surface.mutating_calls + self.surface.read_calls:
                for name in UNKNOWN_ARG_NAMES:
                    args = dict(call[1])
                    args[name] = self.rng.choice((True, 1, "x", None, [], {"a": 1}))
                    probes.append(self.call_probe("unknown_args", call[0], args))
        return probes

    def unknown_methods(self) -> list[Probe]:
        return [self.call_probe("unknown_methods", m, self.pick(self.surface.mutating_calls)[1])
                for _ in range(15) for m in UNKNOWN_METHODS]

    def private_methods(self) -> list[Probe]:
        return [self.call_probe("private_methods", m, self.pick(self.surface.mutating_calls)[1])
                for _ in range(15) for m in PRIVATE_METHODS]

    def mutating_casts(self) -> list[Probe]:
        """Valid mutating requests with no reply queue, on every route (fanout included)."""
        return [self.call_probe("mutating_casts", call[0], call[1], reply=False, route=route)
                for _ in range(10) for call in self.surface.mutating_calls for route in self.each_route()]

    def undirected_mutating_calls(self) -> list[Probe]:
        """Mutating calls with a reply queue on routes where nothing may change (fanout, agent topic)."""
        routes = tuple(r for r in self.each_route() if r.name in self.surface.no_mutation_routes)
        return [self.call_probe("undirected_mutating_calls", call[0], call[1], route=route)
                for _ in range(10 // len(routes)) for call in self.surface.mutating_calls for route in routes]

    def hostile_context(self) -> list[Probe]:
        probes = []
        values: tuple[Json, ...] = (5, None, [], {"a": {"b": [1]}}, "x" * 10240, 1e300, "\u0000", True)
        keys = ("_context_request_id", "_context_user", "_context_aos_agent_instance", "_context_roles",
                "_unique_id", "namespace", "version", "_context_" + "x" * 1000)
        for _ in range(3):
            for key in keys:
                for value in values:
                    call = self.pick(self.surface.read_calls)
                    if key == "_unique_id" and isinstance(value, str):
                        # Each round must be a new request: the same id again is a duplicate,
                        # which servers drop without an answer (as oslo does).
                        value = value + self.hex_id()
                    probes.append(self.call_probe("hostile_context", call[0], call[1], extra={key: value}))
        for value in (5, None, [], {}, "", "x" * 10240, True):  # unusable ids: no answer can be matched
            call = self.pick(self.surface.read_calls)
            req, _ = self.request(call[0], call[1])
            req["_msg_id"] = value
            probes.append(Probe("hostile_context", envelope(req), self.route()))
            req, msg_id = self.request(call[0], call[1])
            req["_reply_q"] = value
            probes.append(self.probe("hostile_context", envelope(req), msg_id))
        return probes

    def other_reply_queue(self, cls: str, reply_q: str) -> Probe:
        """A read request whose replies go to `reply_q`, not ours: no answer is due to us."""
        req, _ = self.read_request()
        req["_reply_q"] = reply_q
        return Probe(cls, envelope(req), self.route())

    def nonexistent_reply_queue(self) -> list[Probe]:
        return [self.other_reply_queue("nonexistent_reply_q", f"reply_{self.hex_id()}") for _ in range(100)]

    def foreign_reply_queue(self) -> list[Probe]:
        foreign = self.surface.foreign_queues
        return [self.other_reply_queue("foreign_reply_q", foreign[i % len(foreign)]) for i in range(100)]

    def big_bodies(self) -> list[Probe]:
        probes = []
        mib = 1 << 20
        for i in range(200):
            call = self.pick(self.surface.read_calls + self.surface.mutating_calls)
            if i % 4 == 3:  # 1 MiB of garbage with nothing to answer
                probes.append(Probe("big_bodies", self.rng.randbytes(mib), self.route()))
                continue
            args = dict(call[1])
            args["pad" if i % 2 else "name"] = "x" * mib
            probes.append(self.call_probe("big_bodies", call[0], args))
        return probes

    def forged_announce(self) -> list[Probe]:
        spec = self.surface.announce
        if spec is None:
            return []
        probes = []
        hosts = sorted(spec.reports)
        future = spec.now + 10**6
        for i in range(200):
            host = hosts[i % len(hosts)]
            report = dict(spec.reports[host])
            variant = i % 8
            sent_at: Json = future
            if variant == 0:
                report["instance_id"] = self.hex_id()
            elif variant == 1:  # another host's name on this report
                report["host"] = hosts[(i + 1) % len(hosts)]
                report["instance_id"] = self.hex_id()
            elif variant == 2:
                report["host"] = f"{spec.phantom_prefix}{i}"
                report["instance_id"] = self.hex_id()
            elif variant == 3:
                sent_at = self.rng.choice(("nan", 1e300, -1e300, 2**63, "x", None, [], True, -1))
                report["instance_id"] = self.hex_id()
            elif variant == 4:
                report = self.rng.choice(({"host": 5}, {"host": "../x"}, {}, {"host": host, "vgs": "x"},
                                          {"host": host, "active_lvs": [{"name": 1}] * 3}))
            elif variant == 5:
                report["ready"] = False
                report["active_lvs"] = []
                report["vgs"] = {}
            elif variant == 6:
                report["host_id"] = 2000
            else:
                report["vgs"] = {vg: {"lockspace": "lost"} for vg in report.get("vgs", {})}
            probes.append(self.call_probe("forged_announce", "agent_announce", {"report": report, "sent_at": sent_at},
                                          reply=i % 5 == 0))
        return probes

    def mutations(self, count: int) -> list[Probe]:
        """Random byte edits of valid requests (read-only calls and no-op mutations)."""
        seeds = self.surface.read_calls + self.surface.absent_calls
        probes = []
        for i in range(count):
            call = self.pick(seeds)
            req, msg_id = self.request(call[0], call[1], reply=i % 10 != 0)
            if i % 2:
                body = envelope(self.mutate(dumps(req).encode()).decode("latin-1"))
            else:
                body = self.mutate(envelope(req))
            due = msg_id if names_reply_once(body, msg_id, self.reply_queue) else None
            probes.append(Probe(cls="mutations", body=body, route=self.route(), msg_id=due))
        return probes

    def mutate(self, data: bytes) -> bytes:
        b = bytearray(data)
        for _ in range(self.rng.randint(1, 4)):
            op = self.rng.randrange(6)
            pos = self.rng.randrange(len(b) + 1)
            if op == 0 and b:
                b[min(pos, len(b) - 1)] = self.rng.randrange(256)
            elif op == 1:
                b[pos:pos] = self.rng.randbytes(self.rng.randint(1, 8))
            elif op == 2:
                del b[pos:pos + self.rng.randint(1, 16)]
            elif op == 3:
                start = self.rng.randrange(len(b) + 1)
                b[pos:pos] = b[start:start + self.rng.randint(1, 32)]
            elif op == 4:
                b[pos:pos] = self.rng.choice(INTERESTING)
            elif b:
                i = min(pos, len(b) - 1)
                b[i] ^= 1 << self.rng.randrange(8)
        return bytes(b)


CLASSES: dict[str, Callable[[HostileGenerator], list[Probe]]] = {
    "_timeout": HostileGenerator.timeout_values,
    "expiration": HostileGenerator.expiration,
    "envelope_version": HostileGenerator.envelope_version,
    "message_not_string": HostileGenerator.message_not_string,
    "invalid_json": HostileGenerator.invalid_json,
    "truncated_json": HostileGenerator.truncated_json,
    "deep_nesting": HostileGenerator.deep_nesting,
    "content_type": HostileGenerator.content_type,
    "missing_method": HostileGenerator.missing_method,
    "method_not_string": HostileGenerator.method_not_string,
    "args_not_object": HostileGenerator.args_not_object,
    "wrong_arg_types": HostileGenerator.wrong_arg_types,
    "unknown_args": HostileGenerator.unknown_args,
    "unknown_methods": HostileGenerator.unknown_methods,
    "private_methods": HostileGenerator.private_methods,
    "mutating_casts": HostileGenerator.mutating_casts,
    "undirected_mutating_calls": HostileGenerator.undirected_mutating_calls,
    "foreign_reply_q": HostileGenerator.foreign_reply_queue,
    "big_bodies": HostileGenerator.big_bodies,
    "forged_announce": HostileGenerator.forged_announce,  # controller only (judged right after)
}
# Run after the mutations, as they can stall a server for a while: unusable reply queue names
# (a server retries a reply for 60 s).
LATE_CLASSES: dict[str, Callable[[HostileGenerator], list[Probe]]] = {
    "hostile_context": HostileGenerator.hostile_context,
    "nonexistent_reply_q": HostileGenerator.nonexistent_reply_queue,
}
