"""Ctrl-C while aosctl waits for an answer (docs/cli.md, "Interrupted commands").

A stand-in controller (an oslo.messaging server on its own topic) takes the request and
holds it; the test interrupts aosctl only once the request has arrived, so the request is
known to be on its way to running. aosctl must say whether what it had sent changes state
(and where to look before retrying) and exit 130, as a shell reports SIGINT.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import stand_in_server

pytestmark = pytest.mark.timeout(120)


class HoldingController:
    """Takes every call and answers only when released."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()

    def _hold(self) -> dict[str, object]:
        self.arrived.set()
        self.release.wait(60)
        return {}

    def create_volume(self, ctxt: object, **kwargs: object) -> dict[str, object]:
        return self._hold()

    def list_agents(self, ctxt: object, **kwargs: object) -> dict[str, object]:
        return self._hold()


@pytest.fixture
def holding_controller(unique_topic: str, rabbit_url: str) -> Iterator[tuple[str, HoldingController]]:
    endpoint = HoldingController()
    with stand_in_server(rabbit_url, unique_topic, endpoint):
        yield unique_topic, endpoint
        endpoint.release.set()


@pytest.mark.parametrize(("argv", "said"), [
    (["volume", "create", "volume-int1", "--size", "1G", "--vg", "vg1"], "the request was sent and may still run"),
    (["agents"], "the query changed nothing"),
])
def test_interrupted_call_says_whether_it_may_still_run(
        swift_bin: Path, amqp_url: str, holding_controller: tuple[str, HoldingController],
        argv: list[str], said: str) -> None:
    topic, endpoint = holding_controller
    proc = subprocess.Popen(
        [str(swift_bin / "aosctl"), "--url", amqp_url, "--set", f"controller.topic={topic}", "--timeout", "60", *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert endpoint.arrived.wait(30), "the request never reached the stand-in controller"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    print(err)
    assert proc.returncode == 130, (proc.returncode, out, err)
    assert said in err, err
    assert out == "", out
