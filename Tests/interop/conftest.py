"""Shared fixtures for the interop tests (Python oslo.messaging <-> Swift binaries).

They expect the private broker that scripts/test.sh starts (scripts/rabbitmq-private.sh) and its
environment:

    AOS_TEST_AMQP_URL     amqp://guest:guest@127.0.0.1:PORT/
    AOS_TEST_BROKER_NODE  Erlang node name of the broker
    AOS_TEST_BROKER_DIR   the broker's directory
    AOS_TEST_BROKER_CTL   path of scripts/rabbitmq-private.sh

To run pytest by hand:
    scripts/rabbitmq-private.sh start /tmp/aos-broker
    set -a; . /tmp/aos-broker/broker.env; set +a
    .venv/bin/python -m pytest -q Tests/interop
    scripts/rabbitmq-private.sh stop /tmp/aos-broker

Fixtures:
    broker_env        dict of the AOS_TEST_* variables (fails loudly when missing)
    amqp_url          the broker URL as given (amqp://…)
    rabbit_url        the same URL as rabbit://… (oslo.messaging 18 does not load amqp://)
    broker_ctl        broker_ctl("stop_app"), broker_ctl("list_queues", "name", "messages") …
    swift_bin         Path of the Swift build's bin directory (`swift build --show-bin-path`)
    spawn             spawn("aos-rpc-peer", "--url", url, ready="READY") -> SwiftProcess,
                      killed at teardown
    oslo_transport    an oslo.messaging RPC transport on the broker, cleaned up at teardown
    unique_topic      a fresh topic name per test
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The servers refuse senders without a role by default ([auth] enforce). These suites run as
# the broker's guest user; Tests/interop/test_authorization.py runs with per-role users and
# enforcement on (docs/security.md).
os.environ.setdefault("AOS_AUTH_ENFORCE", "false")


REPO_ROOT = Path(__file__).resolve().parents[2]
BROKER_VARS = (
    "AOS_TEST_AMQP_URL",
    "AOS_TEST_BROKER_NODE",
    "AOS_TEST_BROKER_DIR",
    "AOS_TEST_BROKER_CTL",
)


# ---- broker --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def broker_env() -> dict[str, str]:
    missing = [name for name in BROKER_VARS if not os.environ.get(name)]
    if missing:
        pytest.fail(
            "interop tests need the private test broker, but "
            + ", ".join(missing)
            + " is/are not set. Run them through scripts/test.sh, or start a broker with "
            "`scripts/rabbitmq-private.sh start DIR` and `set -a; . DIR/broker.env; set +a`.",
            pytrace=False,
        )
    return {name: os.environ[name] for name in BROKER_VARS}


def to_rabbit_url(url: str) -> str:
    """amqp://… -> rabbit://… (oslo.messaging 18 only has the rabbit driver)."""
    if url.startswith("amqp://"):
        return "rabbit://" + url[len("amqp://"):]
    return url


@pytest.fixture
def tls(broker_env: dict[str, str]) -> tuple[int, str]:
    """The private broker's TLS listener: (port, CA file of its certificate, which names localhost)."""
    port, ca = os.environ.get("AOS_TEST_AMQPS_PORT"), os.environ.get("AOS_TEST_TLS_CA")
    if not port or not ca:
        pytest.fail("the private broker has no TLS listener (AOS_TEST_AMQPS_PORT / AOS_TEST_TLS_CA unset)")
    return int(port), ca


@pytest.fixture(scope="session")
def amqp_url(broker_env: dict[str, str]) -> str:
    return broker_env["AOS_TEST_AMQP_URL"]


@pytest.fixture(scope="session")
def rabbit_url(amqp_url: str) -> str:
    return to_rabbit_url(amqp_url)


def run_broker_ctl(env: dict[str, str], *args: str, check: bool = True,
                   timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cmd = ["bash", env["AOS_TEST_BROKER_CTL"], "ctl", env["AOS_TEST_BROKER_DIR"], *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"broker ctl {' '.join(args)} failed (exit {result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


@pytest.fixture(scope="session")
def broker_ctl(broker_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """broker_ctl(*rabbitmqctl_args, check=True, timeout=120) -> CompletedProcess."""

    def ctl(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run_broker_ctl(broker_env, *args, check=check, timeout=timeout)

    return ctl


@pytest.fixture
def unique_topic() -> str:
    return f"aos-test-{uuid.uuid4().hex[:12]}"


def make_oslo_conf() -> object:
    """A private oslo.config ConfigOpts usable by oslo.messaging clients and servers.

    oslo.messaging 18.3 registers its [oslo_messaging_tracing] and [oslo_messaging_metrics]
    options on the global cfg.CONF only, yet RPCClient.cast/call read them from the
    transport's conf: register them on ours too.
    """
    import importlib

    from oslo_config import cfg

    conf = cfg.ConfigOpts()
    for module, attr, group in (
        ("oslo_messaging._tracing.client", "oslo_messaging_tracing", "oslo_messaging_tracing"),
        ("oslo_messaging._metrics.client", "oslo_messaging_metrics", "oslo_messaging_metrics"),
    ):
        try:
            opts = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):  # other oslo.messaging versions
            continue
        conf.register_opts(opts, group=group)
    conf([], project="aos-interop-test")
    return conf


@contextlib.contextmanager
def stand_in_server(rabbit_url: str, topic: str, endpoint: object) -> Iterator[None]:
    """An oslo.messaging RPC server (server name `stand-in`, threading executor) serving
    `endpoint` on `topic` while the block runs: a stand-in for our controller or an agent."""
    import oslo_messaging

    transport = oslo_messaging.get_rpc_transport(make_oslo_conf(), url=rabbit_url)
    server = oslo_messaging.get_rpc_server(
        transport, oslo_messaging.Target(topic=topic, server="stand-in"), [endpoint], executor="threading")
    server.start()
    try:
        yield
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


@pytest.fixture
def oslo_transport(rabbit_url: str) -> Iterator[object]:
    import oslo_messaging

    conf = make_oslo_conf()
    transport = oslo_messaging.get_rpc_transport(conf, url=rabbit_url)
    try:
        yield transport
    finally:
        transport.cleanup()


# ---- Swift binaries ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def swift_bin() -> Path:
    """The directory with the built executables.

    AOS_SWIFT_BIN_PATH overrides the lookup; AOS_SWIFT_SCRATCH_PATH (set by scripts/test.sh when
    it builds elsewhere than .build) is passed to `swift build --show-bin-path`.
    """
    override = os.environ.get("AOS_SWIFT_BIN_PATH")
    if override:
        path = Path(override)
    else:
        swift = shutil.which("swift")
        if swift is None:
            pytest.fail("`swift` is not on PATH; cannot locate the built executables", pytrace=False)
        cmd = [swift, "build", "--show-bin-path"]
        scratch = os.environ.get("AOS_SWIFT_SCRATCH_PATH")
        if scratch:
            cmd += ["--scratch-path", scratch]
        result = subprocess.run(
            cmd, cwd=REPO_ROOT,
            capture_output=True, text=True, timeout=300,
        )
        if result.returncode != 0:
            pytest.fail(f"swift build --show-bin-path failed:\n{result.stderr}", pytrace=False)
        path = Path(result.stdout.strip().splitlines()[-1])
    if not path.is_dir():
        pytest.fail(f"Swift bin path {path} does not exist: run `swift build` first", pytrace=False)
    return path


# ---- the programs' arguments for a test cluster (here and in Tests/cinder) -----------------

def start_sim_agent(spawn: Callable[..., SwiftProcess], conf: Path, state: Path, host: str, host_id: int,
                    vg: str, *extra: str, env: dict[str, str] | None = None) -> SwiftProcess:
    """aos-agent (configuration file `conf`, then `extra`) as host `host` of the simulated shared
    VG `vg`, started until READY. Agents given the same `state` folder share one VG (its state
    file); each keeps its state_dir below it. They announce every second and do not wait for the PV."""
    return spawn("aos-agent", "--config", conf, *sim_agent_args(state, host, host_id, vg), *extra,
                 env=env, ready=f"READY host={host}", timeout=60)


def sim_agent_args(state: Path, host: str, host_id: int, vg: str) -> list[str]:
    """The arguments of start_sim_agent's aos-agent."""
    return [
        "--set", f"DEFAULT.host={host}",
        "--set", "agent.lvm_backend=simulated",
        "--set", f"agent.simulated_state_file={state / 'cluster.json'}",
        "--set", f"agent.volume_groups={vg}",
        "--set", f"agent.state_dir={state / host}",
        "--set", "agent.announce_interval=1",
        "--set", "agent.pv_wait_timeout=0",
        "--host-id", str(host_id),
    ]


def controller_args(host: str) -> list[str]:
    """aos-controller's arguments for a test cluster: an agent is stale 2 s and down 3 s after
    its last announcement (the agents announce every second); debug log."""
    return [
        "--set", f"DEFAULT.host={host}",
        "--set", "controller.agent_stale_after=2",
        "--set", "controller.agent_down_after=3",
        "--set", "controller.log_level=debug",
    ]


def start_cluster(cluster: Any) -> Any:
    """Starts a test cluster's two agents (host_a with host_id 1, host_b with 2) and its controller."""
    cluster.start_agent(cluster.host_a, 1)
    cluster.start_agent(cluster.host_b, 2)
    cluster.start_controller()
    return cluster


class SwiftProcess:
    """A running executable whose stdout is read line by line on a thread.

    lines: every stdout line after the readiness line lands in a queue; use next_line() to
    read them with a timeout. stderr goes to a file (stderr_path) so it never blocks the child.
    """

    def __init__(self, argv: list[str], env: dict[str, str], stderr_path: Path,
                 cwd: Path | None = None) -> None:
        self.argv = argv
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "wb")
        self.proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self._stderr, text=True, bufsize=1, start_new_session=True,
        )
        self.ready_line: str | None = None
        self.output: list[str] = []  # every stdout line, for diagnostics
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name=f"stdout-{argv[0]}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.output.append(line)
            self._lines.put(line)
        self._lines.put(None)  # EOF

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr_text(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def describe(self) -> str:
        return (
            f"{' '.join(self.argv)} (pid {self.proc.pid}, exit {self.proc.poll()})\n"
            f"--- stdout ---\n" + "\n".join(self.output[-50:]) +
            "\n--- stderr (tail) ---\n" + "\n".join(self.stderr_text().splitlines()[-50:])
        )

    def next_line(self, timeout: float = 10) -> str | None:
        """The next stdout line, None at EOF; AssertionError after timeout seconds."""
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output line within {timeout}s from {self.describe()}") from None

    def wait_for_line(self, prefix: str, timeout: float = 30) -> str:
        """Skip stdout lines until one starts with prefix; return it."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line starting with {prefix!r} within {timeout}s from "
                                     f"{self.describe()}")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(timeout=5)
                raise AssertionError(f"process exited before printing {prefix!r}: {self.describe()}")
            if line.startswith(prefix):
                return line

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, grace: float = 5) -> int | None:
        """SIGTERM, then SIGKILL (to its whole process group) after grace seconds."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: children go too
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._reader.join(timeout=5)
        if not self._stderr.closed:
            self._stderr.close()
        return self.proc.returncode


@pytest.fixture
def spawn(swift_bin: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., SwiftProcess]]:
    """spawn(executable, *args, ready="READY", timeout=30, env=None) -> SwiftProcess.

    executable is a name in swift_bin (or a path). Waits until the process prints a stdout line
    starting with `ready` (pass ready=None not to wait); fails with its output when it exits or
    times out first. Every spawned process is stopped at teardown (SIGTERM, then SIGKILL).
    """
    started: list[SwiftProcess] = []

    def start(executable: str, *args: str, ready: str | None = "READY", timeout: float = 30,
              env: dict[str, str] | None = None) -> SwiftProcess:
        path = Path(executable) if "/" in executable else swift_bin / executable
        if not path.exists():
            pytest.fail(f"executable {path} not found: did `swift build` build it?", pytrace=False)
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        stderr_path = tmp_path / f"{path.name}-{len(started)}.stderr"
        proc = SwiftProcess([str(path), *map(str, args)], full_env, stderr_path, cwd=REPO_ROOT)
        started.append(proc)
        if ready is not None:
            proc.ready_line = proc.wait_for_line(ready, timeout=timeout)
        return proc

    yield start
    failed = getattr(request.node, "rep_call", None)
    for proc in reversed(started):
        proc.stop()
        if failed is not None and failed.failed:
            print(f"\n[spawned] {proc.describe()}")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Make the call-phase report available to fixtures (request.node.rep_call)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: kills a broker of its own under load (test_chaos.py)")
    # oslo.messaging 18 pulls in eventlet-era modules that warn on import; not ours to fix.
    for rule in (
        "ignore:\\s*Eventlet is deprecated",
        "ignore::DeprecationWarning:oslo_utils.*",
        "ignore::DeprecationWarning:oslo_service.*",
        "ignore::DeprecationWarning:debtcollector.*",
    ):
        config.addinivalue_line("filterwarnings", rule)
