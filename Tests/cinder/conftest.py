"""Fixtures for the Cinder driver tests (deploy/cinder, issue 6).

They run in .venv/cinder (scripts/setup.sh): the real `cinder` from PyPI and the driver package
installed from deploy/cinder. They need the private broker of scripts/test.sh (AOS_TEST_* in the
environment) and the Swift build (aos-agent, aos-controller), exactly like Tests/interop, whose
broker and process fixtures are reused from Tests/interop/conftest.py.

Cinder side: a cinder.conf made of the seed's [sanlock] section (only agent_transport_url points
at the private broker) is loaded into cinder's global CONF, a throw-away sqlite database is
migrated with cinder's own migrations, and the driver is loaded by cinder's VolumeManager
(service_name="sanlock"), i.e. through `volume_driver` and importutils as cinder-volume does.

System side: one controller and two agents (host A, host B; simulated LVM backend sharing one
simulated VG `vol` through a state file). Host A is also the cinder-volume host (the manager's
host is "A@sanlock"), so image/clone copies run on A's agent.
"""

from __future__ import annotations

import importlib.util
import os
import sys
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


HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
SEED_SECTION = HERE / "seed_sanlock.conf"
VG = "vol"  # the seed's volume_group
BACKEND = "sanlock"  # the seed's backend section / volume_backend_name

# ---- reuse the interop fixtures (broker, Swift binaries, process spawning) ---------------

_spec = importlib.util.spec_from_file_location("aos_interop_conftest", REPO_ROOT / "Tests/interop/conftest.py")
_interop = importlib.util.module_from_spec(_spec)
sys.modules["aos_interop_conftest"] = _interop
_spec.loader.exec_module(_interop)

broker_env = _interop.broker_env
amqp_url = _interop.amqp_url
rabbit_url = _interop.rabbit_url
swift_bin = _interop.swift_bin
spawn = _interop.spawn
pytest_runtest_makereport = _interop.pytest_runtest_makereport
SwiftProcess = _interop.SwiftProcess


def pytest_configure(config: pytest.Config) -> None:
    _interop.pytest_configure(config)
    for rule in (
        "ignore::DeprecationWarning",
        "ignore::PendingDeprecationWarning",
        "ignore::UserWarning:alembic.*",
        "ignore:.*Eventlet.*",
    ):
        config.addinivalue_line("filterwarnings", rule)


def wait_for(predicate: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as e:  # noqa: BLE001 - report the last failure on timeout
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.2)  # polling interval, not synchronisation
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


# ---- the Swift side: controller + two agents ----------------------------------------------


class Cluster:
    """aos-controller and two aos-agents (simulated LVM, one shared VG) on the private broker."""

    def __init__(self, start: Callable[..., Any], amqp_url: str, tmp: Path) -> None:
        self._start = start
        self.amqp_url = amqp_url
        self.tmp = tmp
        tag = uuid.uuid4().hex[:8]
        self.host_a, self.host_b = f"cmp-a-{tag}", f"cmp-b-{tag}"
        # A controller topic of its own: controllers of other clusters on the same broker
        # (another module's, a previous test's) must not take this cluster's requests.
        self.topic = f"aos-controller-{tag}"
        self.conf = tmp / "empty.conf"  # isolates the programs from /etc/aos/aos.conf
        self.conf.write_text("")
        self.agents: dict[str, Any] = {}
        self.controller: Any = None

    def start_agent(self, host: str, host_id: int, *extra: str) -> Any:
        proc = _interop.start_sim_agent(self._start, self.conf, self.tmp, host, host_id, VG,
                                        "--set", f"DEFAULT.transport_url={self.amqp_url}",
                                        "--set", f"agent.controller_topic={self.topic}", *extra)
        self.agents[host] = proc
        return proc

    def start_controller(self) -> Any:
        self.controller = self._start(
            "aos-controller", "--config", self.conf,
            "--set", f"DEFAULT.transport_url={self.amqp_url}",
            *_interop.controller_args(f"ctl-{uuid.uuid4().hex[:6]}"),
            "--set", f"controller.topic={self.topic}",
            "--set", "controller.agent_response_timeout=60",
            ready="READY", timeout=30)
        return self.controller

    def start(self) -> Cluster:
        return _interop.start_cluster(self)


@pytest.fixture(scope="module")
def module_spawn(swift_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """Like the interop `spawn`, for processes shared by a test module."""
    started: list[Any] = []
    logs = tmp_path_factory.mktemp("procs")

    def start(executable: str, *args: Any, ready: str = "READY", timeout: float = 30,
              env: dict[str, str] | None = None) -> Any:
        path = swift_bin / executable
        if not path.exists():
            pytest.fail(f"executable {path} not found: did `swift build` build it?", pytrace=False)
        proc = SwiftProcess([str(path), *map(str, args)], {**os.environ, **(env or {})},
                            logs / f"{executable}-{len(started)}.stderr", cwd=REPO_ROOT)
        started.append(proc)
        proc.ready_line = proc.wait_for_line(ready, timeout=timeout)
        return proc

    yield start
    for proc in reversed(started):
        proc.stop()


@pytest.fixture(scope="module")
def cluster(module_spawn, amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    return Cluster(module_spawn, amqp_url, tmp_path_factory.mktemp("cluster")).start()


@pytest.fixture
def private_cluster(spawn, amqp_url: str, tmp_path: Path) -> Cluster:
    """A cluster of its own, for tests that kill processes."""
    return Cluster(spawn, amqp_url, tmp_path).start()


# ---- the Cinder side ------------------------------------------------------------------------


def seed_section(url: str | None = None) -> str:
    """The seed's [sanlock] section, verbatim except agent_transport_url when `url` is given."""
    lines = SEED_SECTION.read_text().splitlines()
    if url is not None:
        lines = [f"agent_transport_url = {url}" if ln.startswith("agent_transport_url") else ln
                 for ln in lines]
    return "\n".join(lines) + "\n"


def cinder_conf_text(workdir: Path, section: str, extra: str = "") -> str:
    """A cinder.conf for a test cinder-volume: the seed's [DEFAULT] keys and backend section,
    plus what a process without a cloud around it needs (sqlite, no notifications)."""
    return f"""[DEFAULT]
rpc_response_timeout = 2888
enabled_backends = {BACKEND}
default_volume_type = {BACKEND}
transport_url = fake:/
state_path = {workdir}
lock_path = {workdir}/locks
image_conversion_dir = {workdir}/conversion

[database]
connection = sqlite:///{workdir}/cinder.sqlite

[oslo_messaging_notifications]
driver = noop

[oslo_concurrency]
lock_path = {workdir}/locks

[coordination]
backend_url = file://{workdir}/coordination

{section}
{extra}"""


class CinderEnv:
    """Cinder's global CONF loaded from the test cinder.conf, a migrated database, a context."""

    def __init__(self, conf_path: Path) -> None:
        from cinder import context, objects, rpc
        from cinder.common import config  # noqa: F401 - registers [DEFAULT] options
        from cinder.db import migration
        from oslo_config import cfg

        self.conf_path = conf_path
        self.CONF = cfg.CONF
        self.CONF(["--config-file", str(conf_path)], project="cinder", default_config_files=[])
        objects.register_all()
        rpc.init(self.CONF)
        migration.db_sync()
        from cinder import coordination
        coordination.COORDINATOR.start()
        # An admin request context of a project, as cinder-api's RPCs carry one.
        self.ctx = context.RequestContext(user_id="test-user", project_id="test-project",
                                          is_admin=True)
        from cinder.volume import volume_types
        self.volume_type = volume_types.create(self.ctx, BACKEND, {"volume_backend_name": BACKEND})
        self.multiattach_type = volume_types.create(
            self.ctx, f"{BACKEND}-multiattach",
            {"volume_backend_name": BACKEND, "multiattach": "<is> True"})

    def manager(self, cluster: Cluster, service_name: str = BACKEND):
        """cinder-volume's VolumeManager for backend `service_name` on the cluster's host A,
        with its driver set up and checked (what init_host does), once the agents are alive.
        The only change to the seed's section: the cluster's own controller topic."""
        from cinder.volume import manager as volume_manager

        mgr = volume_manager.VolumeManager(service_name=service_name,
                                           host=f"{cluster.host_a}@{service_name}")
        self.CONF.set_override("agent_controller_topic", cluster.topic, group=service_name)
        mgr.driver.do_setup(self.ctx)  # the controller client is made here, with that topic
        self.CONF.clear_override("agent_controller_topic", group=service_name)
        wait_for(lambda: mgr.driver.check_for_setup_error() or True, timeout=30,
                 what="driver setup check (controller + live agents)")
        mgr.driver.set_initialized()
        mgr.stats = {"pools": {}, "allocated_capacity_gb": 0}  # as init_host leaves it
        return mgr


@pytest.fixture(scope="session")
def cinder_env(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> CinderEnv:
    workdir = tmp_path_factory.mktemp("cinder")
    (workdir / "locks").mkdir()
    extra = (
        # Two more backends for failure tests: a controller topic nobody serves, and a VG no
        # agent serves. Same keys as the seed's section otherwise.
        "\n[sanlock-nocontroller]\n" + seed_section(amqp_url).split("\n", 1)[1]
        + "agent_controller_topic = aos-nobody-listens\nagent_query_timeout = 2\n"
        "agent_response_timeout = 3\n"
        + "\n[sanlock-novg]\n" + seed_section(amqp_url).split("\n", 1)[1].replace(
            "volume_group = vol", "volume_group = nosuchvg")
        # For test_authorization.py: transport URL, key and topic are set there per cluster.
        + "\n[sanlock-signed]\n" + seed_section(amqp_url).split("\n", 1)[1].replace(
            "volume_backend_name=sanlock", "volume_backend_name=sanlock-signed")
    )
    conf = workdir / "cinder.conf"
    conf.write_text(cinder_conf_text(workdir, seed_section(amqp_url), extra))
    return CinderEnv(conf)


@pytest.fixture(scope="module")
def manager(cinder_env: CinderEnv, cluster: Cluster):
    """The VolumeManager of the cinder-volume service on host A, driver ready."""
    mgr = cinder_env.manager(cluster)
    yield mgr
    mgr.driver.client.close()


class Volumes:
    """Creates volumes and attachments in cinder's database and drives them through the
    VolumeManager the way cinder-api's RPCs do."""

    def __init__(self, env: CinderEnv, mgr: Any) -> None:
        self.env = env
        self.mgr = mgr
        self.ctx = env.ctx

    def new(self, size: int = 1, multiattach: bool = False, create: bool = True):
        from cinder import objects

        vtype = self.env.multiattach_type if multiattach else self.env.volume_type
        vol = objects.Volume(
            self.ctx, size=size, host=f"{self.mgr.host}#{BACKEND}", status="creating",
            attach_status="detached", volume_type_id=vtype["id"], multiattach=multiattach,
            project_id=self.ctx.project_id, user_id=self.ctx.user_id,
            availability_zone="nova", display_name=f"test-{uuid.uuid4().hex[:6]}")
        vol.create()
        if create:
            self.mgr.create_volume(self.ctx, vol, allow_reschedule=False)
            vol.refresh()
        return vol

    def attach(self, vol: Any, host: str, instance: str | None = None):
        """attachment_create + attachment_update (what nova does for an attach): returns
        (attachment, connection_info)."""
        from cinder import objects

        att = objects.VolumeAttachment(
            self.ctx, volume_id=vol.id, instance_uuid=instance or str(uuid.uuid4()),
            attach_status="reserved", attach_mode="rw")
        att.create()
        vol.refresh()
        connector = {"host": host, "ip": "127.0.0.1", "initiator": f"iqn.test:{host}",
                     "platform": "x86_64", "os_type": "linux", "multipath": False}
        info = self.mgr.attachment_update(self.ctx, vol, connector, att.id)
        att.refresh()
        vol.refresh()
        return att, info

    def detach(self, vol: Any, att: Any) -> None:
        """attachment_delete as cinder-api does it: the manager's RPC, then finish_detach."""
        vol.refresh()
        self.mgr.attachment_delete(self.ctx, att.id, vol)
        vol.finish_detach(att.id)
        vol.refresh()


@pytest.fixture(scope="module")
def volumes(cinder_env: CinderEnv, manager) -> Volumes:
    return Volumes(cinder_env, manager)


@pytest.fixture
def ctl(manager) -> Callable[..., Any]:
    """ctl(method, **kwargs): a direct controller call on the driver's transport (to look)."""
    client = manager.driver.client

    def call(method: str, **kwargs: Any) -> Any:
        return client.call(method, what=f"test {method}", query=True, **kwargs)
    return call


def active_on(ctl: Callable[..., Any], vol: Any) -> dict[str, str]:
    state = ctl("get_volume", vg=VG, name=vol.name)
    return {a["host"]: a["mode"] for a in state["active_on"]}
