"""Fixtures of the VM lab tests (real lvm2 + lvmlockd + sanlock in two qemu guests).

Run them through scripts/lab.sh, which builds the guest image and the static aos-agent, starts
a private broker when none is given, and exports:

    AOS_LAB_IMAGE      directory with vmlinuz + initrd.cpio (Tests/lab/build-image.sh)
    AOS_LAB_AGENT_BIN  the aos-agent binary copied into the guests (static Swift stdlib)
    AOS_LAB_AGENT_DEBS the directory with its packages (aos-common, aos-agent) the guests install
    AOS_LAB_RUN_DIR    where disks, sockets, logs of this run go
    AOS_TEST_AMQP_URL  the host's private broker (guests reach it at 10.0.2.2:<port>)
or  AOS_LAB_ATTACH     the run directory of a lab already started with `scripts/lab.sh up`:
                       the tests use it as it is and leave it running.

Fixtures:
    lab        session: the Lab (two booted guests, shared VG created, agents READY)
    g1, g2     the two guests (labvm.Guest): g1.sh("lvs"), g1.agent_log(), …
    hosts      (rpc_host_1, rpc_host_2): the agents' RPC server names
    rpc        rpc(host, timeout=120) -> TimedClient (oslo.messaging RPC client, calls timed)
    sim        session: two aos-agent processes on the host with the SIMULATED backend on one
               shared state file, for running the same scenarios against the simulator
    lv         a fresh LV name per test; every LV created under it is cleaned up afterwards
    controller session: aos-controller on the host (topic aos-lab-controller, to which the
               lab agents announce); api: an oslo.messaging client for it
    swift_bin_dir()  where the host's aos-controller / aosctl are (AOS_SWIFT_BIN_PATH, or
               `swift build --show-bin-path` with AOS_SWIFT_SCRATCH_PATH as --scratch-path)
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

from labvm import LAB_CONTROLLER_TOPIC, VG, Guest, Lab, log  # noqa: E402

# The servers refuse senders without a role by default ([auth] enforce). These suites run as
# the broker's guest user; Tests/interop/test_authorization.py runs with per-role users and
# enforcement on (docs/security.md).
os.environ.setdefault("AOS_AUTH_ENFORCE", "false")


# Reuse the interop tests' oslo.messaging setup (config object, amqp:// -> rabbit://).
_spec = importlib.util.spec_from_file_location("interop_conftest", REPO / "Tests" / "interop" / "conftest.py")
interop = importlib.util.module_from_spec(_spec)
assert _spec.loader is not None
_spec.loader.exec_module(interop)

TIMINGS: dict[str, list[float]] = defaultdict(list)
EVENTS: dict[str, float] = {}


REPORTS: list[str] = []


def report(text: str) -> None:
    """A block of text (a measurement table) shown in the run's summary, passing or not."""
    REPORTS.append(text)
    log(text)


def record(name: str, seconds: float) -> None:
    TIMINGS[name].append(seconds)


def event(name: str, seconds: float) -> None:
    EVENTS[name] = seconds
    log(f"timing {name}: {seconds:.1f}s")


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the lab through scripts/lab.sh (see docs/testing.md)", pytrace=False)
    return value


# ---- the lab -----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def amqp_url() -> str:
    attach = os.environ.get("AOS_LAB_ATTACH")
    if attach:
        url = Lab(Path(attach)).meta().get("amqp_url")
        if url:
            return url
    return env("AOS_TEST_AMQP_URL")


@pytest.fixture(scope="session")
def rabbit_url(amqp_url: str) -> str:
    return interop.to_rabbit_url(amqp_url)


@pytest.fixture(scope="session")
def lab(amqp_url: str) -> Iterator[Lab]:
    attach = os.environ.get("AOS_LAB_ATTACH")
    if attach:
        lab = Lab(Path(attach))
        for g in lab.guests:
            if not g.running():
                pytest.fail(f"AOS_LAB_ATTACH={attach}: {g.name} is not running", pytrace=False)
            if "READY host=" not in g.agent_output():
                g.agent_start()
        yield lab
        return
    run = Path(env("AOS_LAB_RUN_DIR"))
    run.mkdir(parents=True, exist_ok=True)
    lab = Lab(run, Path(env("AOS_LAB_IMAGE")))
    try:
        lab.prepare(Path(env("AOS_LAB_AGENT_BIN")), Path(env("AOS_LAB_AGENT_DEBS")))
        t0 = time.monotonic()
        for name, secs in lab.boot().items():
            event(f"boot {name} (both started together)", secs)
        for name, secs in lab.create_vg().items():
            event(name, secs)
        tag = uuid.uuid4().hex[:6]
        for g in lab.guests:
            g.write_agent_config(amqp_url, f"{g.name}-{tag}")
            # Started at every boot of this guest from now on, as systemd would.
            g.sh("touch /var/lib/aos-agent/autostart && sync", check=True)
            event(f"agent start to READY {g.name}", g.agent_start())
        lab.save_meta(amqp_url=amqp_url, tag=tag)
        event("lab setup total (boot, VG, agents)", time.monotonic() - t0)
        yield lab
    finally:
        if os.environ.get("AOS_LAB_KEEP") == "1":
            log(f"AOS_LAB_KEEP=1: leaving the lab running in {run} (scripts/lab.sh down {run})")
        else:
            lab.down()


@pytest.fixture(scope="session")
def g1(lab: Lab) -> Guest:
    return lab.guests[0]


@pytest.fixture(scope="session")
def g2(lab: Lab) -> Guest:
    return lab.guests[1]


def rpc_host(g: Guest) -> str:
    for line in (g.share / "aos.conf").read_text().splitlines():
        if line.startswith("host = "):
            return line.split("=", 1)[1].strip()
    raise AssertionError(f"no host in {g.share / 'aos.conf'}")


@pytest.fixture(scope="session")
def hosts(g1: Guest, g2: Guest) -> tuple[str, str]:
    return rpc_host(g1), rpc_host(g2)


# ---- RPC ---------------------------------------------------------------------------------------

class TimedClient:
    """An oslo.messaging RPC client for one agent; every call's duration is recorded."""

    def __init__(self, transport: Any, host: str, timeout: float, label: str) -> None:
        import oslo_messaging

        self.host = host
        self.label = label
        target = oslo_messaging.Target(topic="aos-agent", server=host, version="1.0")
        self._client = oslo_messaging.get_rpc_client(transport, target, timeout=timeout)

    def call(self, method: str, **kwargs: Any) -> Any:
        start = time.monotonic()
        try:
            return self._client.call({}, method, **kwargs)
        finally:
            record(f"{self.label} {method}", time.monotonic() - start)

    def error(self, method: str, **kwargs: Any):
        """The RemoteError a call must fail with."""
        import oslo_messaging

        with pytest.raises(oslo_messaging.RemoteError) as info:
            self.call(method, **kwargs)
        return info.value


@pytest.fixture(scope="session")
def oslo_transport(rabbit_url: str) -> Iterator[Any]:
    import oslo_messaging

    transport = oslo_messaging.get_rpc_transport(interop.make_oslo_conf(), url=rabbit_url)
    yield transport
    transport.cleanup()


@pytest.fixture(scope="session")
def rpc(oslo_transport: Any) -> Callable[..., TimedClient]:
    def make(host: str, timeout: float = 120, label: str = "real") -> TimedClient:
        return TimedClient(oslo_transport, host, timeout, label)
    return make


# ---- the controller on the host ------------------------------------------------------------------

def swift_bin_dir() -> Path:
    override = os.environ.get("AOS_SWIFT_BIN_PATH")
    if override:
        return Path(override)
    cmd = [shutil.which("swift") or "swift", "build", "--show-bin-path"]
    if os.environ.get("AOS_SWIFT_SCRATCH_PATH"):
        cmd += ["--scratch-path", os.environ["AOS_SWIFT_SCRATCH_PATH"]]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=True).stdout
    return Path(out.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def controller(lab: Lab, amqp_url: str, hosts: tuple[str, str],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """aos-controller (the host's debug build) on topic aos-lab-controller; yields its log file."""
    binary = swift_bin_dir() / "aos-controller"
    if not binary.exists():
        pytest.fail(f"{binary} not built: run `swift build` (scripts/test.sh does)", pytrace=False)
    log_path = tmp_path_factory.mktemp("controller") / "controller.log"
    with open(log_path, "wb") as err:
        proc = subprocess.Popen(
            [str(binary), "--set", f"DEFAULT.transport_url={amqp_url}", "--set", "DEFAULT.host=lab-controller",
             "--set", f"controller.topic={LAB_CONTROLLER_TOPIC}", "--set", "controller.agent_response_timeout=120",
             "--set", f"controller.preferred_hosts={hosts[0]}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY"), f"controller did not start: {line!r}\n{log_path.read_text()[-3000:]}"
        yield log_path
    finally:
        stop_process(proc, grace=15)


@pytest.fixture(scope="session")
def api(controller: Path, oslo_transport: Any) -> Any:
    import oslo_messaging

    target = oslo_messaging.Target(topic=LAB_CONTROLLER_TOPIC, version="1.0")
    return oslo_messaging.get_rpc_client(oslo_transport, target, timeout=180)


def wait_for_agents(api: Any, hosts: tuple[str, ...], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        agents = api.call({}, "list_agents")
        rows = agents["agents"] if isinstance(agents, dict) else agents
        alive = {a["host"] for a in rows if a.get("status") == "alive" and a.get("ready")}
        if set(hosts) <= alive:
            return
        assert time.monotonic() < deadline, f"lab agents not alive in the controller's view: {agents}"
        time.sleep(1)


def stop_process(p: subprocess.Popen, grace: float) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; always reaped."""
    if p.poll() is not None:
        return
    p.terminate()
    try:
        p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=10)


# ---- the simulated twin --------------------------------------------------------------------------

class SimAgents:
    def __init__(self, binary: str, amqp_url: str, workdir: Path) -> None:
        self.workdir = workdir
        tag = uuid.uuid4().hex[:6]
        self.hosts = (f"sim1-{tag}", f"sim2-{tag}")
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        for i, host in enumerate(self.hosts, start=1):
            log_path = workdir / f"{host}.log"
            self.logs.append(log_path)
            argv = [binary,
                    "--set", f"DEFAULT.transport_url={amqp_url}", "--set", f"DEFAULT.host={host}",
                    "--set", "agent.lvm_backend=simulated",
                    "--set", f"agent.simulated_state_file={workdir / 'cluster.json'}",
                    "--set", "agent.simulated_vg_size_gb=1",
                    "--set", f"agent.volume_groups={VG}", "--set", f"agent.state_dir={workdir / host}",
                    "--set", "agent.log_level=debug", "--host-id", str(i)]
            with open(log_path, "wb") as err:
                p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                     text=True, start_new_session=True)
            self.procs.append(p)
            assert p.stdout is not None
            line = p.stdout.readline()
            if not line.startswith("READY"):
                self.stop()
                raise AssertionError(f"simulated agent {host} did not start: {line!r}\n{log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        for p in self.procs:
            stop_process(p, grace=10)


@pytest.fixture(scope="session")
def sim(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimAgents]:
    binary = os.environ.get("AOS_LAB_AGENT_BIN") or os.environ.get("AOS_LAB_SIM_AGENT_BIN")
    if not binary and os.environ.get("AOS_LAB_ATTACH"):
        binary = str(Path(os.environ["AOS_LAB_ATTACH"]) / "share" / "aos-agent")
    if not binary:
        pytest.fail("AOS_LAB_AGENT_BIN is not set", pytrace=False)
    agents = SimAgents(binary, amqp_url, tmp_path_factory.mktemp("sim"))
    yield agents
    agents.stop()


# ---- per test ----------------------------------------------------------------------------------

@pytest.fixture
def lv(request: pytest.FixtureRequest) -> str:
    return f"volume-t-{request.node.name[5:25].strip('_-[]').replace('[', '-').replace(']', '')}-{uuid.uuid4().hex[:6]}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    tr = terminalreporter
    if REPORTS:
        tr.section("lab measurements")
        for text in REPORTS:
            for line in text.splitlines():
                tr.write_line(line)
    if not TIMINGS and not EVENTS:
        return
    tr.section("lab timings")
    for name, secs in EVENTS.items():
        tr.write_line(f"  {name:<55} {secs:7.1f} s")
    if TIMINGS:
        tr.write_line(f"  {'RPC call (as seen by the Python caller)':<40} {'n':>4} {'median':>8} {'max':>8}")
        for name in sorted(TIMINGS):
            v = TIMINGS[name]
            tr.write_line(f"  {name:<40} {len(v):4d} {statistics.median(v):8.2f} {max(v):8.2f}")
    run = os.environ.get("AOS_LAB_RUN_DIR") or os.environ.get("AOS_LAB_ATTACH")
    if run and Path(run).is_dir():
        (Path(run) / "timings.json").write_text(json.dumps({"events": EVENTS, "rpc": TIMINGS}, indent=1))


def pytest_configure(config: pytest.Config) -> None:
    interop.pytest_configure(config)


def mpath_lab() -> bool:
    """The multipath lab (AOS_LAB_MPATH=1, or an attached lab started with it)."""
    if os.environ.get("AOS_LAB_MPATH") is not None:
        return os.environ["AOS_LAB_MPATH"] == "1"
    attach = os.environ.get("AOS_LAB_ATTACH")
    return bool(attach) and bool(Lab(Path(attach)).meta().get("mpath", False))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # In the multipath lab lab1 has no lab-path stand-in (/dev/mapper/sanlock): the fault
    # injection tests built on it run in the normal lab, test_lab_multipath.py in this one.
    if not mpath_lab():
        return
    skip = pytest.mark.skip(reason="the multipath lab has no lab-path stand-in on lab1 (runs in the normal lab)")
    for item in items:
        if item.nodeid.split("::")[0].endswith("test_lab_fencing.py"):
            item.add_marker(skip)
