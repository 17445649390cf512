"""Scenarios run through the agents' RPC against BOTH the real lab (lvm2 + lvmlockd + sanlock in
two guests) and two simulated agents on the host. The assertions are the same for both; every
step's outcome is also kept in a transcript so the two backends can be compared step by step
(test_lab_agents.py::test_simulator_matches_real).

They follow LVMBehaviourSuite (Sources/SharedLVM/BehaviourSuite.swift) scenario by scenario,
one level up (the agent's operations instead of the LVMBackend protocol).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import oslo_messaging

VG = "vglab"
MiB = 1 << 20


@dataclass
class Outcome:
    ok: bool
    result: Any = None
    exc_type: str | None = None
    message: str = ""

    def __repr__(self) -> str:
        return f"ok {self.result!r}" if self.ok else f"{self.exc_type}: {self.message}"


@dataclass
class Transcript:
    """Steps of one scenario on one backend, with names normalized (hosts -> A/B, LVs -> LV…)."""
    names: dict[str, str]
    steps: list[tuple[str, Outcome]] = field(default_factory=list)

    def norm(self, value: Any) -> Any:
        if isinstance(value, str):
            for real, alias in self.names.items():
                value = value.replace(real, alias)
            return value
        if isinstance(value, dict):
            return {k: self.norm(v) for k, v in value.items() if k not in ("uuid", "lv_uuid")}
        if isinstance(value, list):
            return [self.norm(v) for v in value]
        return value


class Side:
    """One host's agent in a scenario: call() records the outcome; expect_*() assert on it."""

    def __init__(self, client: Any, label: str, transcript: Transcript) -> None:
        self.client = client
        self.host = client.host
        self.label = label
        self.t = transcript

    def _run(self, method: str, kwargs: dict[str, Any]) -> Outcome:
        # "_step" names the step when its arguments depend on the backend (sizes from vg_info).
        step = kwargs.pop("_step", None) or ", ".join(f"{k}={v}" for k, v in kwargs.items())
        step = self.t.norm(f"{self.label}.{method}({step})")
        try:
            out = Outcome(True, self.client.call(method, **kwargs))
        except oslo_messaging.RemoteError as e:
            out = Outcome(False, exc_type=e.exc_type, message=str(e.value))
        self.t.steps.append((step, Outcome(out.ok, self.t.norm(out.result), out.exc_type, self.t.norm(out.message))))
        return out

    def ok(self, method: str, **kwargs: Any) -> Any:
        out = self._run(method, kwargs)
        assert out.ok, f"{self.label} {method} {kwargs} failed: {out.exc_type}: {out.message}"
        return out.result

    def fails(self, exc_type: str, method: str, **kwargs: Any) -> str:
        out = self._run(method, kwargs)
        assert not out.ok, f"{self.label} {method} {kwargs}: expected {exc_type}, got success {out.result}"
        assert out.exc_type == exc_type, \
            f"{self.label} {method} {kwargs}: expected {exc_type}, got {out.exc_type}: {out.message}"
        return out.message


@dataclass
class Ctx:
    a: Side
    b: Side
    lv: str                                   # prefix of this scenario's LV names
    device_size: Callable[[str, str], int | None]  # (side label "a"/"b", lv) -> bytes, None if unknown

    def name(self, suffix: str) -> str:
        return f"{self.lv}-{suffix}"


def lock_modes(side: Side) -> dict[str, str]:
    return {lk["name"]: lk["mode"] for lk in side.ok("lock_status")["locks"] if lk.get("name")}


# ---- scenarios -------------------------------------------------------------------------------

def create_inactive(c: Ctx) -> None:
    lv = c.name("inactive")
    r = c.a.ok("create_lv", vg=VG, name=lv, size_bytes=5 * MiB)
    assert r["size_bytes"] == 8 * MiB and r["changed"] is True and r["host"] == c.a.host, r
    assert c.a.ok("create_lv", vg=VG, name=lv, size_bytes=8 * MiB)["changed"] is False
    c.b.fails("SizeConflict", "create_lv", vg=VG, name=lv, size_bytes=12 * MiB)
    info = c.b.ok("lv_info", vg=VG, name=lv)
    assert info["active"] is False and info["mode"] is None and info["size_bytes"] == 8 * MiB, info
    names = [x["name"] for x in c.b.ok("list_lvs", vg=VG)["lvs"]]
    assert lv in names and "lvmlock" not in names, names
    assert lv not in lock_modes(c.a), "no lock is held after create (lvcreate -an)"
    assert c.device_size("a", lv) is None


def exclusive_moves(c: Ctx) -> None:
    lv = c.name("ex")
    c.a.ok("create_lv", vg=VG, name=lv, size_bytes=4 * MiB)
    r = c.a.ok("activate_lv", vg=VG, name=lv, mode="exclusive")
    assert r["changed"] is True and r["mode"] == "exclusive" and r["device_path"] == f"/dev/{VG}/{lv}", r
    assert c.a.ok("activate_lv", vg=VG, name=lv, mode="exclusive")["changed"] is False
    msg = c.b.fails("LockedByOtherHost", "activate_lv", vg=VG, name=lv, mode="exclusive")
    assert lv in msg and c.b.host in msg, msg
    c.b.fails("LockedByOtherHost", "activate_lv", vg=VG, name=lv, mode="shared")
    a_info, b_info = c.a.ok("lv_info", vg=VG, name=lv), c.b.ok("lv_info", vg=VG, name=lv)
    assert a_info["active"] is True and a_info["mode"] == "exclusive", a_info
    assert b_info["active"] is False and b_info["mode"] is None, b_info
    assert lock_modes(c.a).get(lv) == "exclusive"
    assert c.a.ok("deactivate_lv", vg=VG, name=lv)["changed"] is True
    assert c.a.ok("deactivate_lv", vg=VG, name=lv)["changed"] is False
    assert c.b.ok("activate_lv", vg=VG, name=lv, mode="exclusive")["changed"] is True
    assert lock_modes(c.b).get(lv) == "exclusive"
    assert lv not in lock_modes(c.a)


def shared_on_both_upgrade_only_alone(c: Ctx) -> None:
    lv = c.name("sh")
    c.a.ok("create_lv", vg=VG, name=lv, size_bytes=4 * MiB)
    assert c.a.ok("activate_lv", vg=VG, name=lv, mode="shared")["changed"] is True
    assert c.b.ok("activate_lv", vg=VG, name=lv, mode="shared")["changed"] is True
    assert c.a.ok("activate_lv", vg=VG, name=lv, mode="shared")["changed"] is False
    assert lock_modes(c.a).get(lv) == "shared" and lock_modes(c.b).get(lv) == "shared"
    c.a.fails("LockedByOtherHost", "activate_lv", vg=VG, name=lv, mode="exclusive")
    c.b.ok("deactivate_lv", vg=VG, name=lv)
    assert c.a.ok("activate_lv", vg=VG, name=lv, mode="exclusive")["changed"] is True
    assert lock_modes(c.a).get(lv) == "exclusive"
    assert c.a.ok("lv_info", vg=VG, name=lv)["mode"] == "exclusive"


def downgrade_on_holder(c: Ctx) -> None:
    lv = c.name("down")
    c.a.ok("create_lv", vg=VG, name=lv, size_bytes=4 * MiB)
    c.a.ok("activate_lv", vg=VG, name=lv, mode="exclusive")
    assert c.a.ok("activate_lv", vg=VG, name=lv, mode="shared")["changed"] is True
    info = c.a.ok("lv_info", vg=VG, name=lv)
    assert info["active"] is True and info["mode"] == "shared", info
    c.b.ok("activate_lv", vg=VG, name=lv, mode="shared")
    assert lock_modes(c.a).get(lv) == "shared" and lock_modes(c.b).get(lv) == "shared"


def extend_grow_only(c: Ctx) -> None:
    lv = c.name("grow")
    c.a.ok("create_lv", vg=VG, name=lv, size_bytes=8 * MiB)
    r = c.b.ok("extend_lv", vg=VG, name=lv, size_bytes=16 * MiB)
    assert r["changed"] is True and r["size_bytes"] == 16 * MiB and r["refreshed"] is False, r
    assert c.a.ok("lv_info", vg=VG, name=lv)["size_bytes"] == 16 * MiB
    c.a.fails("SizeConflict", "extend_lv", vg=VG, name=lv, size_bytes=8 * MiB)
    assert c.a.ok("extend_lv", vg=VG, name=lv, size_bytes=16 * MiB)["changed"] is False


def extend_on_exclusive_holder(c: Ctx) -> None:
    lv = c.name("exext")
    c.a.ok("create_lv", vg=VG, name=lv, size_bytes=8 * MiB)
    c.a.ok("activate_lv", vg=VG, name=lv, mode="exclusive")
    c.b.fails("LockedByOtherHost", "extend_lv", vg=VG, name=lv, size_bytes=12 * MiB)
    r = c.a.ok("extend_lv", vg=VG, name=lv, size_bytes=12 * MiB)
    assert r["changed"] is True and r["size_bytes"] == 12 * MiB and r["refreshed"] is True, r
    # The holder's device has the new size (blockdev in the guest, and as the agent reports it).
    assert c.device_size("a", lv) in (None, 12 * MiB)
    r = c.a.ok("refresh_lv", vg=VG, name=lv)
    assert r["size_bytes"] == 12 * MiB and r["lv_size_bytes"] == 12 * MiB and r["active"] is True, r
    assert c.b.ok("lv_info", vg=VG, name=lv)["size_bytes"] == 12 * MiB


def extend_while_shared(c: Ctx) -> None:
    lv = c.name("shext")
    c.a.ok("create_lv", vg=VG, name=lv, size_bytes=8 * MiB)
    c.a.ok("activate_lv", vg=VG, name=lv, mode="shared")
    c.b.ok("activate_lv", vg=VG, name=lv, mode="shared")
    c.a.fails("IncompatibleLockMode", "extend_lv", vg=VG, name=lv, size_bytes=16 * MiB)
    r = c.a.ok("extend_lv", vg=VG, name=lv, size_bytes=16 * MiB, shared_update=True)
    assert r["changed"] is True and r["size_bytes"] == 16 * MiB and r["refreshed"] is True, r
    assert c.device_size("a", lv) in (None, 16 * MiB)
    # sanlock does not refresh other hosts: B's device keeps the old size until refresh_lv.
    assert c.device_size("b", lv) in (None, 8 * MiB)
    assert c.b.ok("lv_info", vg=VG, name=lv)["size_bytes"] == 16 * MiB
    r = c.b.ok("refresh_lv", vg=VG, name=lv)
    assert r["size_bytes"] == 16 * MiB and r["refreshed"] is True, r
    assert c.device_size("b", lv) in (None, 16 * MiB)


def delete_refused_while_active(c: Ctx) -> None:
    lv = c.name("rm")
    c.a.ok("create_lv", vg=VG, name=lv, size_bytes=4 * MiB)
    c.a.ok("activate_lv", vg=VG, name=lv, mode="exclusive")
    msg = c.a.fails("Busy", "delete_lv", vg=VG, name=lv)
    assert "deactivate it first" in msg, msg
    c.b.fails("LockedByOtherHost", "delete_lv", vg=VG, name=lv)
    c.b.fails("LockedByOtherHost", "delete_lv", vg=VG, name=lv, volume_clear="none")
    c.a.ok("deactivate_lv", vg=VG, name=lv)
    assert c.b.ok("delete_lv", vg=VG, name=lv, volume_clear="zero", volume_clear_size_mb=1)["changed"] is True
    assert c.a.ok("delete_lv", vg=VG, name=lv)["changed"] is False
    c.a.fails("NotFound", "lv_info", vg=VG, name=lv)
    assert lv not in [x["name"] for x in c.a.ok("list_lvs", vg=VG)["lvs"]]


def not_found(c: Ctx) -> None:
    lv = c.name("missing")
    c.a.fails("NotFound", "lv_info", vg=VG, name=lv)
    c.a.fails("NotFound", "activate_lv", vg=VG, name=lv, mode="exclusive")
    c.a.fails("NotFound", "activate_lv", vg=VG, name=lv, mode="shared")
    assert c.a.ok("deactivate_lv", vg=VG, name=lv)["changed"] is False
    c.a.fails("NotFound", "refresh_lv", vg=VG, name=lv)
    c.a.fails("NotFound", "extend_lv", vg=VG, name=lv, size_bytes=8 * MiB)
    assert c.a.ok("delete_lv", vg=VG, name=lv)["changed"] is False


def insufficient_space(c: Ctx) -> None:
    free = c.a.ok("vg_info", vg=VG)["free_bytes"]
    c.a.fails("InsufficientSpace", "create_lv", vg=VG, name=c.name("huge"), size_bytes=free + 64 * MiB,
              _step="create_lv(LV-huge, free + 64 MiB)")
    lv = c.name("small")
    size = c.a.ok("create_lv", vg=VG, name=lv, size_bytes=4 * MiB)["size_bytes"]
    c.a.fails("InsufficientSpace", "extend_lv", vg=VG, name=lv, size_bytes=size + free + 64 * MiB,
              _step="extend_lv(LV-small, size + free + 64 MiB)")


def delete_zeroes_whole_lv(c: Ctx) -> None:
    lv = c.name("zero")
    c.a.ok("create_lv", vg=VG, name=lv, size_bytes=8 * MiB)
    # Clearing takes the LV exclusively, zeroes it, deactivates and removes it.
    assert c.b.ok("delete_lv", vg=VG, name=lv, volume_clear="zero", volume_clear_size_mb=0)["changed"] is True
    c.b.fails("NotFound", "lv_info", vg=VG, name=lv)


def read_only(c: Ctx) -> None:
    lv = c.name("ro")
    c.a.ok("create_lv", vg=VG, name=lv, size_bytes=4 * MiB)
    c.a.ok("activate_lv", vg=VG, name=lv, mode="shared")
    lvs = {x["name"]: x for x in c.a.ok("list_lvs", vg=VG)["lvs"]}
    assert lvs[lv]["mode"] == "shared" and lvs[lv]["active"] is True and lvs[lv]["size_bytes"] == 4 * MiB, lvs[lv]
    vg = c.a.ok("vg_info", vg=VG)
    assert vg["lockspace"] == "started" and vg["shared"] is True and vg["lock_type"] == "sanlock", vg
    assert vg["lv_count"] >= 1 and 0 < vg["free_bytes"] < vg["size_bytes"] and vg["pv_count"] == 1, vg
    assert vg["extent_size_bytes"] == 4 * MiB and vg["missing_pv_count"] == 0, vg
    locks = c.a.ok("lock_status")
    assert locks["host_id"] == 1 and [ls["vg"] for ls in locks["lockspaces"]] == [VG], locks
    assert c.b.ok("lock_status")["host_id"] == 2
    h = c.a.ok("health")
    assert h["ready"] is True and h["host_id"] == 1 and h["vgs"] == {VG: {"lockspace": "started"}}, h
    assert {"vg": VG, "name": lv, "mode": "shared"} in h["active_lvs"], h


def invalid_input(c: Ctx) -> None:
    for bad in ["", "bad name", "-x", "snapshot1", "pvmove0", "x_tmeta", "x_rimage_0", ".", "..", "a/b",
                "lvmlock", "x" * 128, "$(reboot)"]:
        c.a.fails("InvalidArgument", "create_lv", vg=VG, name=bad, size_bytes=4 * MiB)
    c.a.fails("InvalidArgument", "create_lv", vg=VG, name=c.name("zero-size"), size_bytes=0)
    c.a.fails("InvalidArgument", "create_lv", vg=VG, name=c.name("too-big"), size_bytes=(1 << 50) + 1)
    c.a.fails("InvalidArgument", "activate_lv", vg="vg;rm", name=c.name("x"), mode="exclusive")
    c.a.fails("UnknownVg", "activate_lv", vg="othervg", name=c.name("x"), mode="exclusive")


SCENARIOS: dict[str, Callable[[Ctx], None]] = {
    "create_inactive": create_inactive,
    "exclusive_moves": exclusive_moves,
    "shared_on_both_upgrade_only_alone": shared_on_both_upgrade_only_alone,
    "downgrade_on_holder": downgrade_on_holder,
    "extend_grow_only": extend_grow_only,
    "extend_on_exclusive_holder": extend_on_exclusive_holder,
    "extend_while_shared": extend_while_shared,
    "delete_refused_while_active": delete_refused_while_active,
    "delete_zeroes_whole_lv": delete_zeroes_whole_lv,
    "not_found": not_found,
    "insufficient_space": insufficient_space,
    "read_only": read_only,
    "invalid_input": invalid_input,
}


def cleanup(a: Any, b: Any, prefix: str) -> None:
    """Best effort: deactivate on both hosts and delete every LV whose name starts with prefix."""
    try:
        lvs = [x["name"] for x in a.call("list_lvs", vg=VG)["lvs"] if x["name"].startswith(prefix)]
    except Exception:
        return
    for name in lvs:
        for side in (a, b):
            try:
                side.call("deactivate_lv", vg=VG, name=name)
            except Exception:
                pass
        try:
            a.call("delete_lv", vg=VG, name=name, volume_clear="none")
        except Exception:
            pass
