"""A real Cinder service stack for the driver (issue 14), started once per test session.

What runs, all private to the session and stopped at its end (SIGTERM, then SIGKILL):
- MariaDB: its own datadir under the session's temp dir (mariadb-install-db), its own unix
  socket and TCP port on 127.0.0.1, started here with mariadbd directly (never the system
  service). Production clouds run MariaDB/MySQL; sqlite's plain BEGIN breaks cinder's
  read-then-write transactions under concurrent services.
- cinder-api, cinder-scheduler, cinder-volume: the console scripts of .venv/cinder (the cinder
  package from PyPI), `auth_strategy = noauth`, the broker of scripts/test.sh as transport, and
  one backend with our driver (the seed's [sanlock] section, agent_transport_url and the
  controller topic pointed at this session's cluster).
- aos-controller and two simulated aos-agents (hosts A and B, one shared simulated VG), as in
  Tests/cinder, whose cluster helpers are reused. cinder-volume's host is host A.

The tests drive it with python-cinderclient's Python API the way nova does: the noauth plugin
in a keystoneauth Session, the highest microversion the server offers (3.71 for cinder 29), and
for the compute side the `X-Service-Roles: service` header nova's service token stands for.
"""

from __future__ import annotations

import getpass
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
VENV_BIN = Path(sys.executable).parent  # .venv/cinder/bin: the cinder console scripts
MAX_MICROVERSION = "3.71"  # cinder 29's maximum
# The driver under test is the work tree's, not the copy setup.sh installed into the venv (which
# may be older): first on the path here and in the cinder services' environment.
DRIVER_SRC = REPO_ROOT / "deploy" / "cinder"
sys.path.insert(0, str(DRIVER_SRC))


def _load(name: str, path: Path) -> Any:
    """A conftest of another suite as a plain module (its fixtures are not registered here)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# Tests/cinder's conftest loads Tests/interop's: broker fixtures, SwiftProcess, the cluster.
_cinder = _load("aos_cinder_conftest", REPO_ROOT / "Tests/cinder/conftest.py")
_interop = sys.modules["aos_interop_conftest"]

broker_env = _interop.broker_env
amqp_url = _interop.amqp_url
swift_bin = _interop.swift_bin
pytest_runtest_makereport = _interop.pytest_runtest_makereport
SwiftProcess = _interop.SwiftProcess
Cluster = _cinder.Cluster
wait_for = _cinder.wait_for
BACKEND = _cinder.BACKEND
VG = _cinder.VG
MULTIATTACH = f"{BACKEND}-multiattach"
LEGACY_GLOB = "legacy-*"  # an extra [agent] lv_name_pattern glob of the stack's agents


def pytest_configure(config: pytest.Config) -> None:
    _cinder.pytest_configure(config)


class Timings:
    """Seconds per phase, printed at the end of the session (numbers, never assertions)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, float]] = []

    def add(self, what: str, seconds: float) -> None:
        self.items.append((what, seconds))
        print(f"\n[cinder-stack timing] {what}: {seconds:.1f}s", flush=True)


TIMINGS = Timings()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS.items:
        terminalreporter.section("cinder stack timings")
        for what, seconds in TIMINGS.items:
            terminalreporter.write_line(f"{what:<40} {seconds:6.1f}s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- processes ------------------------------------------------------------------------------


class Procs:
    """Every process the stack started, stopped in reverse order at teardown."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[Any] = []

    def run(self, argv: list[str], name: str, env: dict[str, str] | None = None,
            grace: float = 5) -> Any:
        proc = SwiftProcess([str(a) for a in argv], {**os.environ, **(env or {})},
                            self.logs / f"{name}.stderr", cwd=REPO_ROOT)
        proc.grace = grace
        proc.name = name
        self.started.append(proc)
        return proc

    def spawn_swift(self, swift_bin: Path) -> Callable[..., Any]:
        """The `start` callable Tests/cinder's Cluster expects (like its module_spawn)."""
        def start(executable: str, *args: Any, ready: str = "READY", timeout: float = 30,
                  env: dict[str, str] | None = None) -> Any:
            path = swift_bin / executable
            if not path.exists():
                pytest.fail(f"executable {path} not found: did `swift build` build it?", pytrace=False)
            proc = self.run([str(path), *map(str, args)], f"{executable}-{len(self.started)}", env)
            proc.ready_line = proc.wait_for_line(ready, timeout=timeout)
            return proc
        return start

    def check_alive(self) -> None:
        dead = [p for p in self.started if p.proc.poll() is not None]
        if dead:
            raise AssertionError("stack process exited:\n" + "\n".join(p.describe() for p in dead))

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            proc.stop(grace=proc.grace)
            if proc.proc.poll() is None:
                print(f"[cinder-stack] {proc.name} (pid {proc.pid}) did not stop")


# ---- MariaDB --------------------------------------------------------------------------------


class MariaDB:
    """A private mariadbd: own datadir, unix socket and 127.0.0.1 port; root without password."""

    def __init__(self, procs: Procs, base: Path) -> None:
        self.base = base
        self.datadir = base / "data"
        self.socket = base / "mysqld.sock"
        self.port = free_port()
        self.procs = procs
        self.proc: Any = None

    @staticmethod
    def binaries() -> tuple[str, str]:
        server = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin:/usr/libexec")
        install = shutil.which("mariadb-install-db")
        if not server or not install:
            pytest.fail("mariadbd / mariadb-install-db not found: install mariadb-server "
                        "(scripts/setup.sh --apt)", pytrace=False)
        return server, install

    def start(self) -> MariaDB:
        server, install = self.binaries()
        user = getpass.getuser()  # mariadbd refuses root unless told; never switch user
        result = subprocess.run(
            [install, "--no-defaults", f"--datadir={self.datadir}", f"--user={user}",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise AssertionError(f"mariadb-install-db failed:\n{result.stdout}\n{result.stderr}")
        self.proc = self.procs.run(
            [server, "--no-defaults", f"--datadir={self.datadir}", f"--socket={self.socket}",
             f"--port={self.port}", "--bind-address=127.0.0.1", f"--user={user}",
             f"--pid-file={self.base / 'mysqld.pid'}", f"--log-error={self.base / 'error.log'}",
             f"--tmpdir={self.base}", "--skip-log-bin", "--skip-name-resolve",
             "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=0",
             "--innodb-doublewrite=0",
             "--innodb-flush-method=nosync",  # a throw-away database: no fsync
             "--max-connections=200"],
            "mariadbd", grace=10)
        return self

    def connect(self) -> Any:
        import pymysql
        return pymysql.connect(unix_socket=str(self.socket), user="root", password="",
                               connect_timeout=2)

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.proc.proc.poll() is not None:
                raise AssertionError("mariadbd exited:\n" + self.error_log())
            self.connect().close()
            return True
        wait_for(ready, timeout=60, what="mariadbd accepting connections")
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("CREATE DATABASE cinder CHARACTER SET utf8mb4")
        finally:
            conn.close()

    def reported(self) -> set[str]:
        """The cinder services that have sent a state report (cinder's services table)."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT `binary` FROM cinder.services WHERE deleted = 0 AND report_count > 0")
                return {str(row[0]) for row in cur.fetchall()}
        finally:
            conn.close()

    def error_log(self) -> str:
        try:
            return "\n".join((self.base / "error.log").read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return ""

    @property
    def url(self) -> str:
        return f"mysql+pymysql://root@localhost/cinder?unix_socket={self.socket}&charset=utf8mb4"


# ---- Cinder ---------------------------------------------------------------------------------


def cinder_conf(workdir: Path, db: MariaDB, rabbit_url: str, cluster: Any, api_port: int) -> str:
    etc = VENV_BIN.parent / "etc" / "cinder"
    section = _cinder.seed_section(cluster.amqp_url)
    return f"""[DEFAULT]
host = {cluster.host_a}
auth_strategy = noauth
transport_url = {rabbit_url}
enabled_backends = {BACKEND}
default_volume_type = {BACKEND}
state_path = {workdir}
api_paste_config = {etc / "api-paste.ini"}
resource_query_filters_file = {etc / "resource_filters.json"}
rootwrap_config = {etc / "rootwrap.conf"}
osapi_volume_listen = 127.0.0.1
osapi_volume_listen_port = {api_port}
osapi_volume_workers = 1
report_interval = 2
periodic_interval = 2
service_down_time = 30
scheduler_driver_init_wait_time = 1
rpc_response_timeout = 60
image_conversion_dir = {workdir}/conversion
debug = true

[database]
connection = {db.url}
max_retries = 20
retry_interval = 1

[oslo_messaging_notifications]
driver = noop

[oslo_concurrency]
lock_path = {workdir}/locks

[coordination]
backend_url = file://{workdir}/coordination

{section}agent_controller_topic = {cluster.topic}
"""


class Stack:
    """The running stack: its API endpoint, its cluster and a controller client to look."""

    def __init__(self, procs: Procs, db: MariaDB, cluster: Any, api_port: int, workdir: Path,
                 ctl_client: Any) -> None:
        self.procs = procs
        self.db = db
        self.cluster = cluster
        self.api_port = api_port
        self.workdir = workdir
        self.endpoint = f"http://127.0.0.1:{api_port}/v3"
        self.project_id = uuid.uuid4().hex  # must match project_id_regex (hex/dashes)
        self.user_id = uuid.uuid4().hex
        self.ctl = ctl_client
        self.version = MAX_MICROVERSION

    def client(self, *, service: bool = False) -> Any:
        """A cinderclient v3 as nova builds one (noauth plugin in a keystoneauth Session).
        service=True adds the header nova's service token stands for (needed to delete a
        connected attachment: cinder's check for bug #2004555)."""
        from cinderclient import client as cinder_client
        from cinderclient.contrib import noauth
        from keystoneauth1 import session as ks_session

        plugin = noauth.CinderNoAuthPlugin(self.user_id, self.project_id, endpoint=self.endpoint)
        headers = {"X-Service-Roles": "service"} if service else {}
        # A timeout: a request that hangs (an RPC cinder-api waits for) fails the test instead.
        sess = ks_session.Session(auth=plugin, additional_headers=headers, timeout=90)
        return cinder_client.Client(self.version, session=sess)

    def lv_state(self, volume_id: str) -> dict[str, Any]:
        return self.ctl.get_volume(f"volume-{volume_id}", what="test: look at the LV")

    def lv_gib(self, volume_id: str) -> float:
        return int(self.lv_state(volume_id)["size_bytes"]) / 2**30

    def active_on(self, volume_id: str) -> dict[str, str]:
        return {a["host"]: a["mode"] for a in self.lv_state(volume_id).get("active_on", [])}

    def log_tail(self, name: str, lines: int = 40) -> str:
        """The last warnings and errors of a cinder service's log (it logs at debug level)."""
        path = self.workdir / f"{name}.log"
        try:
            text = path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        keep = [ln for ln in text if " ERROR " in ln or " WARNING " in ln or not ln[:4].isdigit()]
        return "\n".join(keep[-lines:])


def get_pools(client: Any) -> dict[str, dict[str, Any]]:
    """get-pools (detailed): {pool name: capabilities}, from the raw answer (cinderclient's
    Pool objects move the capabilities up into attributes)."""
    _, body = client.client.get("/scheduler-stats/get_pools?detail=True")
    return {p["name"]: dict(p.get("capabilities") or {}) for p in body.get("pools", [])}


def _wait_ready(stack: Stack, procs: Procs) -> None:
    admin = stack.client()

    def api_up() -> bool:
        procs.check_alive()
        admin.services.list()
        return True

    wait_for(api_up, timeout=60, what="cinder-api answering")

    # The highest microversion the server offers (nova negotiates the same way).
    from cinderclient import api_versions
    stack.version = api_versions.discover_version(
        admin, api_versions.APIVersion(MAX_MICROVERSION)).get_string()

    def services_up() -> bool:
        procs.check_alive()
        up = {s.binary for s in admin.services.list() if s.state == "up"}
        return {"cinder-scheduler", "cinder-volume"} <= up

    wait_for(services_up, timeout=60, what="cinder-scheduler and cinder-volume up")

    def pool_up() -> Any:
        procs.check_alive()
        for caps in get_pools(admin).values():
            if caps.get("backend_state") == "up" and float(caps.get("total_capacity_gb", 0)) > 0:
                return caps
        return None

    wait_for(pool_up, timeout=60, what="the backend's pool (up, with capacity) in get-pools")


@pytest.fixture(scope="session")
def stack(broker_env: dict[str, str], amqp_url: str, swift_bin: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from cinder_sharedlvm_driver import client as sl_client

    t0 = time.monotonic()
    base = tmp_path_factory.mktemp("cinder-stack")
    workdir = base / "cinder"
    for d in (workdir, workdir / "locks", workdir / "conversion", base / "db", base / "logs"):
        d.mkdir(parents=True, exist_ok=True)
    procs = Procs(base / "logs")
    ctl_client = None
    try:
        db = MariaDB(procs, base / "db").start()  # boots while the cluster starts
        (base / "cluster").mkdir()
        cluster = Cluster(procs.spawn_swift(swift_bin), amqp_url, base / "cluster")
        # Cinder's names and one legacy glob: test_stack_manage.py manages LVs made outside
        # Cinder (docs/cinder.md, "Manage and unmanage").
        cluster.conf.write_text(f"[agent]\nlv_name_pattern = volume-*, _snapshot-*, {LEGACY_GLOB}\n")
        cluster.start()
        db.wait_ready()
        t_db = time.monotonic()
        TIMINGS.add("mariadb + aos cluster ready", t_db - t0)

        api_port = free_port()
        conf = workdir / "cinder.conf"
        conf.write_text(cinder_conf(workdir, db, _interop.to_rabbit_url(amqp_url), cluster, api_port))
        sync = subprocess.run([str(VENV_BIN / "cinder-manage"), "--config-file", str(conf), "db", "sync"],
                              capture_output=True, text=True, timeout=300)
        if sync.returncode != 0:
            raise AssertionError(f"cinder-manage db sync failed:\n{sync.stdout}\n{sync.stderr[-4000:]}")
        t_sync = time.monotonic()
        TIMINGS.add("cinder-manage db sync", t_sync - t_db)

        path = os.pathsep.join(p for p in (str(DRIVER_SRC), os.environ.get("PYTHONPATH")) if p)
        def start_service(svc: str) -> None:
            procs.run([str(VENV_BIN / f"cinder-{svc}"), "--config-file", str(conf),
                       "--log-file", str(workdir / f"cinder-{svc}.log")], f"cinder-{svc}",
                      env={"PYTHONPATH": path}, grace=3)

        # cinder-api only once the scheduler and the volume service consume their queues: an RPC
        # (get-pools, services) sent before that is lost and waits out rpc_response_timeout. A
        # service's first state report comes after its RPC server started.
        start_service("volume")
        start_service("scheduler")
        wait_for(lambda: procs.check_alive() or db.reported() >= {"cinder-scheduler", "cinder-volume"},
                 timeout=60, what="cinder-scheduler and cinder-volume reporting")
        start_service("api")
        ctl_client = sl_client.ControllerClient(
            _interop.make_oslo_conf(), amqp_url, topic=cluster.topic, exchange="openstack",
            response_timeout=30, query_timeout=10, vg=VG)
        stack = Stack(procs, db, cluster, api_port, workdir, ctl_client)
        _wait_ready(stack, procs)
        TIMINGS.add("cinder services ready", time.monotonic() - t_sync)
        TIMINGS.add("stack start (total)", time.monotonic() - t0)
        yield stack
    finally:
        t1 = time.monotonic()
        if ctl_client is not None:
            ctl_client.close()
        procs.stop_all()
        # ~200 MB of InnoDB files, and pytest keeps the last three sessions' temp dirs; the
        # server's error log stays (outside the datadir).
        shutil.rmtree(base / "db" / "data", ignore_errors=True)
        TIMINGS.add("stack stop", time.monotonic() - t1)


@pytest.fixture(autouse=True)
def _stack_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """On a failed test: the tails of the cinder logs (the driver's errors land there)."""
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed and "stack" in request.fixturenames:
        stack = request.getfixturevalue("stack")
        for name in ("cinder-api", "cinder-scheduler", "cinder-volume"):
            print(f"\n--- {name}.log (tail) ---\n{stack.log_tail(name)}")


@pytest.fixture(scope="session")
def admin(stack: Stack) -> Any:
    """The operator's client (noauth is admin)."""
    return stack.client()


@pytest.fixture(scope="session")
def nova(stack: Stack) -> Any:
    """nova's client: its service token is the X-Service-Roles header under noauth."""
    return stack.client(service=True)


@pytest.fixture(scope="session")
def types(admin: Any) -> dict[str, Any]:
    """The backend's volume type (also cinder.conf's default_volume_type) and a multiattach one."""
    made = {}
    for name, specs in ((BACKEND, {"volume_backend_name": BACKEND}),
                        (MULTIATTACH, {"volume_backend_name": BACKEND, "multiattach": "<is> True"})):
        vtype = admin.volume_types.create(name)
        vtype.set_keys(specs)
        made[name] = vtype
    return made
