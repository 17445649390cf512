"""The Debian packages and the Cinder driver's wheel (issue 16; docs/packaging.md).

Builds them once with scripts/build-packages.sh (the static release build it runs is the one
the VM lab uses, scratch path .build-static: the lab stage after this one builds nothing again),
or takes them from AOS_PACKAGES_DIR. Then, without installing anything on this machine:

- control fields: names, the one version (ProductVersion.current, what `aos-agent --version`
  prints), architectures, Depends (every shared library a binary links is covered by a package
  in its Depends, found with readelf + dpkg -S, not assumed);
- contents: the exact file list of each package, modes, root ownership; conffiles;
- maintainer scripts: shell syntax, and none enables or starts a service;
- `dpkg --root` unpacks all of them into a throwaway root (a dpkg database of its own; no
  maintainer script runs there: --unpack runs only preinst, and none ships one), `dpkg -V`
  finds them intact (but for the conffile, which waits as .dpkg-new until configure), and the
  unpacked programs run: `--help`, every program's `--version`, `aos-agent check --help`, the
  shipped /etc/aos/aos.conf parses (`--print-config`); each package has its changelog, each
  program its manual page; lintian reports no error and no warning;
- the systemd units pass `systemd-analyze verify` against that root, and the controller's
  sandbox exposure (`systemd-analyze security --offline`) is printed and bounded;
- the driver: the .deb's dist-packages and the wheel (pip install --target) both import under
  the Cinder venv and register the oslo.config.opts entry point; their modules are the sources.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(3600)  # the first test pays for the static release builds

ROOT = Path(__file__).resolve().parents[2]
CINDER_PY = ROOT / ".venv" / "cinder" / "bin" / "python"
NAMES = ["aos-common", "aos-agent", "aos-controller", "aosctl", "python3-aos-cinder-driver"]
PROGRAMS = {"aos-agent": "aos-agent", "aos-controller": "aos-controller", "aosctl": "aosctl"}


def run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, **kw)  # type: ignore[call-overload]


def one_version() -> str:
    text = (ROOT / "Sources" / "AOSRuntime" / "ProductVersion.swift").read_text()
    m = re.search(r'public static let current = "([^"]+)"', text)
    assert m, "no ProductVersion.current"
    return m.group(1)


VERSION = one_version()


@pytest.fixture(scope="module")
def pkgdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("AOS_PACKAGES_DIR")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("packages")
    r = subprocess.run(["bash", str(ROOT / "scripts" / "build-packages.sh"), "--out", str(out)],
                       capture_output=True, text=True, timeout=3300)
    sys.stderr.write(r.stderr)
    assert r.returncode == 0, r.stderr[-4000:]
    listed = sorted(Path(p).name for p in r.stdout.split())
    assert listed == sorted(p.name for p in out.iterdir() if p.is_file()), (listed, list(out.iterdir()))
    return out


def deb(pkgdir: Path, name: str) -> Path:
    found = sorted(pkgdir.glob(f"{name}_*.deb"))
    assert len(found) == 1, (name, found)
    return found[0]


def field(path: Path, name: str) -> str:
    return run(["dpkg-deb", "-f", str(path), name]).stdout.strip()


@cache
def members(path: Path) -> dict[str, tarfile.TarInfo]:
    """The data archive's entries by absolute path (directories end with /)."""
    r = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(path)], capture_output=True, timeout=600, check=True)
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
        return {m.name.lstrip(".") + ("/" if m.isdir() and m.name != "./" else ""): m for m in tar.getmembers()}


def control_file(path: Path, name: str) -> str | None:
    r = run(["dpkg-deb", "-I", str(path), name])
    return r.stdout if r.returncode == 0 else None


@pytest.fixture(scope="module")
def instroot(pkgdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """All packages unpacked by dpkg into a throwaway root with its own dpkg database."""
    root = tmp_path_factory.mktemp("root")
    admin = root / "var" / "lib" / "dpkg"
    for d in ("info", "updates", "triggers"):
        (admin / d).mkdir(parents=True)
    (admin / "status").write_text("")
    debs = [str(deb(pkgdir, n)) for n in NAMES]
    r = run(["dpkg", f"--root={root}", "--log=/dev/null", "--force-depends", "--force-not-root",
             "--unpack", *debs])
    assert r.returncode == 0, r.stdout + r.stderr
    yield root
    shutil.rmtree(root, ignore_errors=True)


# ---- control fields ---------------------------------------------------------------------------

def test_names_versions_architectures(pkgdir: Path) -> None:
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    for name in NAMES:
        path = deb(pkgdir, name)
        assert field(path, "Package") == name
        assert field(path, "Version") == VERSION, path
        want_arch = arch if name in PROGRAMS else "all"
        assert field(path, "Architecture") == want_arch
        assert path.name == f"{name}_{VERSION}_{want_arch}.deb"
        assert field(path, "Maintainer") and field(path, "Description")
        assert int(field(path, "Installed-Size")) > 0
    wheels = sorted(pkgdir.glob("*.whl"))
    assert [w.name for w in wheels] == [f"cinder_sharedlvm_driver-{VERSION}-py3-none-any.whl"]


def depends(path: Path) -> list[str]:
    """Depends as package names (alternatives and versions dropped)."""
    return [re.split(r"[\s(|]", d.strip())[0] for d in field(path, "Depends").split(",") if d.strip()]


def test_depends(pkgdir: Path, instroot: Path) -> None:
    for name in ("aos-agent", "aos-controller", "aosctl"):
        path = deb(pkgdir, name)
        deps = depends(path)
        assert f"aos-common (= {VERSION})" in field(path, "Depends")
        # Every NEEDED library of the binary belongs to a package in Depends.
        binary = instroot / "usr" / "bin" / PROGRAMS[name]
        dyn = run(["readelf", "-d", str(binary)]).stdout
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn)
        assert needed, dyn
        for lib in needed:
            owner = run(["dpkg", "-S", f"*/{lib}"])
            assert owner.returncode == 0, (lib, owner.stderr)
            pkgs = {line.split(":")[0] for line in owner.stdout.splitlines()}
            assert pkgs & set(deps), f"{name}: {lib} comes from {pkgs}, Depends is {deps}"
        print(f"{name}: NEEDED {', '.join(needed)} -> Depends {field(path, 'Depends')}")
    agent = depends(deb(pkgdir, "aos-agent"))
    for need in ("lvm2", "lvm2-lockd", "sanlock", "dmsetup", "librabbitmq4"):
        assert need in agent, agent
    assert depends(deb(pkgdir, "aos-common")) == []
    assert depends(deb(pkgdir, "python3-aos-cinder-driver")) == ["python3"]


# ---- contents ---------------------------------------------------------------------------------

FILES = {
    "aos-common": {"/etc/aos/aos.conf": 0o640, "/usr/share/lintian/overrides/aos-common": 0o644},
    "aos-agent": {
        "/usr/bin/aos-agent": 0o755,
        "/usr/share/man/man8/aos-agent.8.gz": 0o644,
        "/usr/share/lintian/overrides/aos-agent": 0o644,
        "/lib/systemd/system/aos-agent.service": 0o644,
        "/lib/systemd/system/nova-compute.service.d/aos-agent.conf": 0o644,
        "/lib/systemd/system/cinder-volume.service.d/aos-agent.conf": 0o644,
        "/usr/share/doc/aos-agent/examples/lvm.conf.kill-command": 0o644,
        "/usr/share/doc/aos-agent/agent.md": 0o644,
        "/usr/share/doc/aos-agent/operations.md": 0o644,
        "/usr/share/doc/aos-agent/packaging.md": 0o644,
    },
    "aos-controller": {
        "/usr/bin/aos-controller": 0o755,
        "/usr/share/man/man8/aos-controller.8.gz": 0o644,
        "/lib/systemd/system/aos-controller.service": 0o644,
        "/usr/share/doc/aos-controller/architecture.md": 0o644,
        "/usr/share/doc/aos-controller/rpc-api.md": 0o644,
        "/usr/share/doc/aos-controller/packaging.md": 0o644,
    },
    "aosctl": {
        "/usr/bin/aosctl": 0o755, "/usr/share/man/man8/aosctl.8.gz": 0o644, "/usr/share/doc/aosctl/cli.md": 0o644,
    },
}
SOURCES = {
    "/etc/aos/aos.conf": "config/aos.conf.example",
    "/lib/systemd/system/aos-agent.service": "deploy/systemd/aos-agent.service",
    "/lib/systemd/system/aos-controller.service": "deploy/systemd/aos-controller.service",
    "/lib/systemd/system/nova-compute.service.d/aos-agent.conf": "deploy/systemd/nova-compute.service.d/aos-agent.conf",
    "/lib/systemd/system/cinder-volume.service.d/aos-agent.conf":
        "deploy/systemd/cinder-volume.service.d/aos-agent.conf",
    "/usr/share/doc/aos-agent/examples/lvm.conf.kill-command": "deploy/lvm/lvm.conf.kill-command",
    "/usr/share/lintian/overrides/aos-common": "deploy/debian/aos-common/lintian-overrides",
    "/usr/share/lintian/overrides/aos-agent": "deploy/debian/aos-agent/lintian-overrides",
}


def driver_files() -> dict[str, int]:
    pkg = ROOT / "deploy" / "cinder" / "cinder_sharedlvm_driver"
    dp = "/usr/lib/python3/dist-packages"
    files = {f"{dp}/cinder_sharedlvm_driver/{p.name}": 0o644 for p in pkg.glob("*.py")}
    info = f"{dp}/cinder_sharedlvm_driver-{VERSION}.dist-info"
    for n in ("METADATA", "WHEEL", "entry_points.txt", "top_level.txt", "INSTALLER"):
        files[f"{info}/{n}"] = 0o644
    files["/usr/share/doc/python3-aos-cinder-driver/README.md"] = 0o644
    return files


def unpacked(path: str) -> str:
    """Where `dpkg --unpack` put a file: a new conffile waits as .dpkg-new until configure."""
    return path + ".dpkg-new" if path.startswith("/etc/") else path


def test_contents(pkgdir: Path, instroot: Path) -> None:
    expected = dict(FILES, **{"python3-aos-cinder-driver": driver_files()})
    for name, files in expected.items():
        want = dict(files)
        want[f"/usr/share/doc/{name}/copyright"] = 0o644
        want[f"/usr/share/doc/{name}/changelog.gz"] = 0o644
        got = members(deb(pkgdir, name))
        for m in got.values():
            assert (m.uname, m.gname, m.uid, m.gid) == ("root", "root", 0, 0), (name, m.name)
        regular = {p: m.mode for p, m in got.items() if m.isfile()}
        assert regular == want, f"{name}: files differ:\n got {sorted(regular)}\nwant {sorted(want)}"
        assert not [p for p, m in got.items() if not (m.isfile() or m.isdir())], got
    for path, source in SOURCES.items():
        assert (instroot / unpacked(path).lstrip("/")).read_bytes() == (ROOT / source).read_bytes(), path
    # The agent's state directory exists (for `aos-agent check` before the first start) and is private.
    agent_dirs = members(deb(pkgdir, "aos-agent"))
    assert agent_dirs["/var/lib/aos-agent/"].mode == 0o700
    # Binaries are stripped: no symbol table left.
    for program in PROGRAMS.values():
        sections = run(["readelf", "-S", "-W", str(instroot / "usr" / "bin" / program)]).stdout
        assert ".symtab" not in sections and ".debug_info" not in sections, program


def test_changelogs_and_manual_pages(pkgdir: Path, instroot: Path) -> None:
    """Every package has its native changelog (this version, the Maintainer as its trailer), every
    program its manual page made from its --help: `man aosctl` works on a node."""
    for name in NAMES:
        text = gzip.decompress((instroot / "usr" / "share" / "doc" / name / "changelog.gz").read_bytes()).decode()
        assert text.startswith(f"{name} ({VERSION}) unstable; urgency=medium\n"), text
        assert f"\n -- {field(deb(pkgdir, name), 'Maintainer')}  " in text, text
    for program in PROGRAMS.values():
        page = gzip.decompress((instroot / "usr" / "share" / "man" / "man8" / f"{program}.8.gz").read_bytes()).decode()
        assert page.count(".TH ") == 1 and f'"{program} {VERSION}"' in page, page[:400]
        assert "USAGE:" in page and "???" not in page, page[:400]


def test_lintian_is_clean(pkgdir: Path) -> None:
    """Debian's package checker finds nothing, beyond the overrides the packages ship (each with
    its reason): no error, no warning."""
    lintian = shutil.which("lintian")
    assert lintian, "lintian is not installed: run scripts/setup.sh"
    debs = [str(deb(pkgdir, n)) for n in NAMES]
    r = run([lintian, "--tag-display-limit", "0", *debs])
    tags = [line for line in r.stdout.splitlines() if re.match(r"^[EW]: ", line)]
    assert not tags and r.returncode == 0, r.stdout + r.stderr
    print(f"lintian: {len(debs)} packages clean")


def test_conffiles(pkgdir: Path) -> None:
    assert control_file(deb(pkgdir, "aos-common"), "conffiles") == "/etc/aos/aos.conf\n"
    for name in NAMES:
        if name == "aos-common":
            continue
        assert control_file(deb(pkgdir, name), "conffiles") is None, name
        # Nothing under /etc except through a conffile.
        assert not [p for p in members(deb(pkgdir, name)) if p.startswith("/etc/") and p != "/etc/"], name


def test_maintainer_scripts(pkgdir: Path) -> None:
    seen = []
    for name in NAMES:
        for script in ("preinst", "postinst", "prerm", "postrm"):
            text = control_file(deb(pkgdir, name), script)
            if text is None:
                continue
            seen.append(f"{name}/{script}")
            assert text.startswith("#!/bin/sh\n"), (name, script)
            r = run(["sh", "-n"], input=text)
            assert r.returncode == 0, (name, script, r.stderr)
            # No auto-start of a half-configured daemon: nothing is enabled or started.
            assert not re.search(r"systemctl\s+(--\S+\s+)*(enable|start|restart|reenable)\b", text), (name, script)
            assert "deb-systemd-invoke start" not in text, (name, script)
            if "systemctl" in text:
                assert "[ -d /run/systemd/system ]" in text, (name, script)
    assert sorted(seen) == sorted([
        "aos-agent/postinst", "aos-agent/prerm", "aos-agent/postrm",
        "aos-controller/postinst", "aos-controller/prerm", "aos-controller/postrm",
        "python3-aos-cinder-driver/postinst", "python3-aos-cinder-driver/prerm",
    ])


# ---- unpacked and run -------------------------------------------------------------------------

def test_dpkg_sees_them_intact(instroot: Path) -> None:
    status = run(["dpkg-query", f"--root={instroot}", "-W", "-f=${Package} ${Version} ${Status}\n"])
    lines = sorted(status.stdout.splitlines())
    # Unpacked, not configured: --unpack runs no postinst.
    assert lines == sorted(f"{n} {VERSION} install ok unpacked" for n in NAMES), status
    # Intact, except the conffile: unpacked as aos.conf.dpkg-new, moved in place by configure.
    verify = run(["dpkg", f"--root={instroot}", "-V"])
    assert verify.returncode == 0 and verify.stdout == "missing   c /etc/aos/aos.conf\n", verify
    assert (instroot / "etc" / "aos" / "aos.conf.dpkg-new").stat().st_mode & 0o777 == 0o640
    conff = run(["dpkg-query", f"--root={instroot}", "-W", "-f=${Conffiles}\n", "aos-common"]).stdout.split()
    assert conff[0] == "/etc/aos/aos.conf", conff


def test_programs_run(instroot: Path) -> None:
    bindir = instroot / "usr" / "bin"
    conf = str(instroot / "etc" / "aos" / "aos.conf.dpkg-new")
    for program in PROGRAMS.values():
        version = run([str(bindir / program), "--version"])
        assert version.returncode == 0 and version.stdout.strip() == f"{program} {VERSION}", version
    for argv, usage in (
        (["aos-agent", "--help"], "USAGE: aos-agent"),
        (["aos-agent", "check", "--help"], "USAGE: aos-agent check"),
        (["aos-agent", "fence", "--help"], "USAGE: aos-agent fence"),
        (["aos-controller", "--help"], "USAGE: aos-controller"),
        (["aosctl", "--help"], "USAGE: aosctl"),
    ):
        r = run([str(bindir / argv[0]), *argv[1:]])
        assert r.returncode == 0 and usage in r.stdout, (argv, r)
    # The shipped configuration (every option commented out) parses for both daemons.
    for argv in (["aos-agent", "serve"], ["aos-controller"]):
        r = run([str(bindir / argv[0]), *argv[1:], "--config", conf, "--print-config"])
        assert r.returncode == 0 and "transport_url" in r.stdout, (argv, r)


def test_systemd_units(instroot: Path) -> None:
    if not shutil.which("systemd-analyze"):
        pytest.skip("no systemd-analyze")
    units = instroot / "lib" / "systemd" / "system"
    for unit in ("aos-agent.service", "aos-controller.service"):
        r = run(["systemd-analyze", "verify", f"--root={instroot}", str(units / unit)])
        # Units it names that this root does not have (network-online.target, …) are not ours to check.
        problems = [line for line in (r.stdout + r.stderr).splitlines()
                    if unit in line and "not found" not in line.lower()]
        assert not problems, (unit, r.stdout, r.stderr)
    exposure = {}
    for unit in ("aos-agent.service", "aos-controller.service"):
        r = run(["systemd-analyze", "security", "--offline=yes", str(units / unit)])
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
        assert m, r.stdout[-2000:] + r.stderr
        exposure[unit] = float(m.group(1))
    print(f"systemd-analyze security --offline exposure (0 best, 10 worst): {exposure}")
    # The agent needs root, devices and LVM (no sandbox); the controller needs none of it.
    assert exposure["aos-controller.service"] < 3.0, exposure


# ---- the Cinder driver -------------------------------------------------------------------------

CHECK_DRIVER = """
import importlib.metadata as md, pathlib, sys
site = sys.argv[1]
from cinder import objects
objects.register_all()  # as cinder-volume does before it loads a driver
import cinder_sharedlvm_driver.driver as d
assert pathlib.Path(d.__file__).resolve().is_relative_to(pathlib.Path(site).resolve()), d.__file__
dist = [x for x in md.distributions(path=[site]) if x.metadata["Name"] == "cinder-sharedlvm-driver"]
assert len(dist) == 1, dist
print(dist[0].version)
eps = [e for e in dist[0].entry_points if e.group == "oslo.config.opts"]
assert [e.name for e in eps] == ["cinder_sharedlvm_driver"], eps
opts = eps[0].load()()
assert opts, opts
"""


def check_driver(site: Path) -> None:
    if not CINDER_PY.exists():
        pytest.skip("no .venv/cinder (scripts/setup.sh --cinder-venv)")
    env = dict(os.environ, PYTHONPATH=str(site))
    r = run([str(CINDER_PY), "-c", CHECK_DRIVER, str(site)], env=env, cwd="/")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == VERSION
    src = ROOT / "deploy" / "cinder" / "cinder_sharedlvm_driver"
    for p in src.glob("*.py"):
        assert (site / "cinder_sharedlvm_driver" / p.name).read_bytes() == p.read_bytes(), p.name


def test_driver_deb(instroot: Path) -> None:
    check_driver(instroot / "usr" / "lib" / "python3" / "dist-packages")


def test_driver_wheel(pkgdir: Path, tmp_path: Path) -> None:
    if not CINDER_PY.exists():
        pytest.skip("no .venv/cinder (scripts/setup.sh --cinder-venv)")
    wheel = sorted(pkgdir.glob("*.whl"))[0]
    target = tmp_path / "site"
    r = run([str(CINDER_PY), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target",
             str(target), str(wheel)])
    assert r.returncode == 0, r.stdout + r.stderr
    check_driver(target)
