"""Replies are hostile input too (docs/security.md, "Every byte is hostile").

A stand-in controller (an oslo.messaging server on its own topic) answers aosctl's
`list_agents` with a result above aosctl's reply limit (64 MiB). aosctl must neither copy
nor decode it, nor wait out its timeout: it fails at once with `messaging_error`, says the
size and the limit, and exits 5 (unreachable). A small answer from the same stand-in still
works, so the refusal is about the size, not the stand-in.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import stand_in_server

pytestmark = pytest.mark.timeout(180)

LIMIT = 64 << 20


class OversizedController:
    """`list_agents` answers with `size` bytes of padding in one agent's host name."""

    def __init__(self) -> None:
        self.size = 0

    def list_agents(self, ctxt: object, **kwargs: object) -> dict[str, object]:
        return {"agents": [{
            "host": "h" * self.size, "status": "alive", "last_seen_seconds_ago": 1.0, "host_id": 1,
            "version": None, "ready": True, "vgs": {}, "active_lvs": [], "restore_failures": [],
            "host_id_conflict": False}], "host_id_conflicts": []}


@pytest.fixture
def oversized_controller(unique_topic: str, rabbit_url: str) -> Iterator[tuple[str, OversizedController]]:
    endpoint = OversizedController()
    with stand_in_server(rabbit_url, unique_topic, endpoint):
        yield unique_topic, endpoint


def test_a_reply_above_the_limit_fails_the_call_at_once(
        swift_bin: Path, amqp_url: str, oversized_controller: tuple[str, OversizedController]) -> None:
    topic, endpoint = oversized_controller
    argv = [str(swift_bin / "aosctl"), "--url", amqp_url, "--set", f"controller.topic={topic}",
            "--timeout", "120", "--json", "agents"]

    endpoint.size = 100
    small = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert small.returncode == 0, small.stderr
    assert json.loads(small.stdout)["agents"][0]["host"] == "h" * 100

    endpoint.size = LIMIT + (1 << 20)
    start = time.monotonic()
    big = subprocess.run(argv, capture_output=True, text=True, timeout=150)
    took = time.monotonic() - start
    print(big.stderr, f"took {took:.1f} s")
    assert big.returncode == 5, (big.returncode, big.stdout[:200], big.stderr)
    error = json.loads(big.stdout)["error"]
    assert error["code"] == "messaging_error", error
    assert "was not accepted" in error["message"], error
    assert f"exceeds this client's limit of {LIMIT} bytes" in error["message"], error
    # Not left to the 120 s timeout: that path would say "no reply ... within".
    assert "within" not in error["message"], error
