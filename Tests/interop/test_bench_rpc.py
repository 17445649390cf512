"""`aos-bench rpc` and its C floor, bare and reliable (issue 17, docs/performance.md "A like-for-like floor").

bench/rpc_floor.c has two modes: bare (auto-ack, no confirms, non-mandatory) and --reliable
(publisher confirms and mandatory publishes on both sides, manual ack of requests with a
prefetch, as the Swift RPCServer does). The broker's own view checks that the reliable server
consumes with manual ack and publishes in confirm mode, that its requests end up acked, and
that a reliable client's unroutable request comes back (mandatory). A short `aos-bench rpc`
must print both floors and every ratio. No figure is asserted: runs this short mean nothing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO_ROOT, run_broker_ctl

pytestmark = pytest.mark.timeout(240)

FLOOR_SOURCE = REPO_ROOT / "bench" / "rpc_floor.c"


@pytest.fixture(scope="module")
def floor_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("cc") is None or shutil.which("pkg-config") is None:
        pytest.fail("cc and pkg-config are needed to build bench/rpc_floor.c", pytrace=False)
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "librabbitmq"], capture_output=True, text=True,
                           check=True).stdout.split()
    out = tmp_path_factory.mktemp("floor") / "rpc_floor"
    build = subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out), str(FLOOR_SOURCE), *flags],
                           capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    return out


def start_server(binary: Path, url: str, queue: str, *extra: str) -> subprocess.Popen[str]:
    p = subprocess.Popen([str(binary), "server", url, queue, *extra], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    line = p.stdout.readline()
    assert line.strip() == "READY", f"rpc_floor server printed {line!r}"
    return p


@pytest.fixture
def servers(floor_binary: Path, amqp_url: str) -> Iterator[dict[str, str]]:
    """A bare, a reliable and a reliable --oslo-routing floor server: mode -> queue."""
    tag = uuid.uuid4().hex[:8]
    queues = {"bare": f"floor-bare-{tag}", "reliable": f"floor-reliable-{tag}",
              "reliable+oslo-routing": f"floor-oslo-{tag}"}
    procs = [start_server(floor_binary, amqp_url, queues["bare"]),
             start_server(floor_binary, amqp_url, queues["reliable"], "--reliable"),
             start_server(floor_binary, amqp_url, queues["reliable+oslo-routing"], "--reliable", "--oslo-routing")]
    try:
        yield queues
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)


def run_client(binary: Path, url: str, queue: str, *extra: str) -> subprocess.CompletedProcess[str]:
    # 20 timed calls after 5 warm-up, then 20 with 4 in flight; 250-byte bodies.
    return subprocess.run([str(binary), "client", url, queue, "20", "5", "20", "4", "250", *extra],
                          capture_output=True, text=True, timeout=60)


def ctl_rows(env: dict[str, str], *args: str) -> list[list[str]]:
    out = run_broker_ctl(env, *args, "--no-table-headers", "-q").stdout
    return [ln.split("\t") for ln in out.splitlines() if ln.strip()]


def test_reliable_floor_uses_confirms_manual_ack_and_mandatory(
        floor_binary: Path, amqp_url: str, broker_env: dict[str, str], servers: dict[str, str]) -> None:
    modes = (("bare", ()), ("reliable", ("--reliable",)), ("reliable+oslo-routing", ("--reliable", "--oslo-routing")))
    for mode, extra in modes:
        result = run_client(floor_binary, amqp_url, servers[mode], *extra)
        assert result.returncode == 0, result.stderr
        line = next((ln for ln in result.stdout.splitlines() if ln.startswith("FLOOR ")), None)
        assert line is not None, result.stdout
        assert f" mode={mode} " in line, line
        figures = r" median_ms=\d+\.\d+ p99_ms=\d+\.\d+ throughput=\d+ calls=20 in_flight=4 body=250 "
        assert re.search(figures, line), line
        # Wake-ups per call (schedstat's third field): its own always, no server or broker pid
        # given here (-1). A client waiting for each reply sleeps and wakes at least once a call.
        wake = re.search(r" wake_client_seq=(\d+\.\d\d) wake_server_seq=-1\.00 wake_broker_seq=-1\.00"
                         r" wake_client_tput=(\d+\.\d\d) ", line)
        assert wake is not None, line
        assert float(wake.group(1)) >= 0.5, line

    # (rabbitmqctl prints the columns in its own order: these are in that order)
    consumers = {row[0]: row for row in ctl_rows(
        broker_env, "list_consumers", "queue_name", "channel_pid", "ack_required", "prefetch_count")}
    bare, reliable = consumers[servers["bare"]], consumers[servers["reliable"]]
    assert bare[2:4] == ["false", "0"], bare
    assert reliable[2:4] == ["true", "80"], reliable
    confirm_mode = {row[0]: row[1] for row in ctl_rows(broker_env, "list_channels", "pid", "confirm")}
    assert confirm_mode[bare[1]] == "false"
    assert confirm_mode[reliable[1]] == "true"
    # Every request the reliable server took was acked (and none is left waiting).
    queues = {row[0]: row[1:] for row in ctl_rows(
        broker_env, "list_queues", "name", "messages_unacknowledged", "messages")}
    assert queues[servers["reliable"]] == ["0", "0"]

    # --oslo-routing: the requests went through the topic exchange, bound to the queue by its name.
    bindings = ctl_rows(broker_env, "list_bindings", "source_name", "destination_name", "routing_key")
    oslo_queue = servers["reliable+oslo-routing"]
    assert ["aos-floor-topic", oslo_queue, oslo_queue] in bindings, bindings
    assert queues[oslo_queue] == ["0", "0"]

    # Mandatory: a request no queue takes comes back, and the reliable client says so.
    lost = run_client(floor_binary, amqp_url, f"no-such-queue-{uuid.uuid4().hex[:8]}", "--reliable")
    assert lost.returncode == 1
    assert "unroutable" in lost.stderr


def bench(swift_bin: Path, amqp_url: str, *extra: str) -> str:
    result = subprocess.run(
        [str(swift_bin / "aos-bench"), "rpc", "--url", amqp_url, "--calls", "20", "--warmup", "5",
         "--throughput-calls", "32", "--concurrency", "4", "--settle", "0", "--no-pinned", *extra],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=200)
    assert result.returncode == 0, f"aos-bench rpc failed:\n{result.stdout}\n{result.stderr[-3000:]}"
    return result.stdout


def test_bench_rpc_prints_both_floors_and_every_ratio(swift_bin: Path, amqp_url: str) -> None:
    out = bench(swift_bin, amqp_url, "--rounds", "2")
    for mode in ("bare", "reliable"):
        assert re.search(rf"C floor, {mode} \(librabbitmq, \d+-byte body\): +median \d+\.\d{{3}} ms", out), out
        assert len(re.findall(rf"Swift/C {mode} *: median \d+\.\d\dx, p99 \d+\.\d\dx, throughput \d+ %", out)) == 2, out
        assert re.search(rf"Swift/C {mode}, default: median \d+\.\d\d–\d+\.\d\dx", out), out
    assert len(re.findall(r"C reliable/bare: median \d+\.\d\dx", out)) == 2, out
    assert re.search(r"over 2 rounds .*\n  C reliable/bare: median \d+\.\d\d–\d+\.\d\dx", out), out
    # Wake-ups per call of client and server, for both floors and the Swift run, each round.
    wakeups = re.findall(r"wake-ups per call: sequential client (\d+\.\d\d) \+ server (\d+\.\d\d) ", out)
    assert len(wakeups) == 6, out
    assert all(float(c) >= 0.5 and float(s) >= 0.5 for c, s in wakeups), out


def test_bench_rpc_floor_choice(swift_bin: Path, amqp_url: str) -> None:
    out = bench(swift_bin, amqp_url, "--rounds", "1", "--floor", "reliable")
    assert "C floor, reliable" in out and "Swift/C reliable" in out, out
    assert "C floor, bare" not in out and "Swift/C bare" not in out, out
    out = bench(swift_bin, amqp_url, "--rounds", "1", "--no-floor")
    assert "C floor" not in out and "Swift/C" not in out, out
    assert "Swift RPCClient -> RPCServer, default:" in out, out
