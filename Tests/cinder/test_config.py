"""The seed's cinder.conf [sanlock] section, verbatim, loads the driver through cinder itself."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import REPO_ROOT, SEED_SECTION, cinder_conf_text, seed_section

SEED = REPO_ROOT.parent / "shared" / "seed" / "000_4e8e64d55dae33b3.txt"


def test_vendored_section_is_the_seed_text():
    """Tests/cinder/seed_sanlock.conf is the seed's section, line for line (when the seed is
    reachable: ../shared next to the clone, as in CI and the developers' machines)."""
    if not SEED.exists():
        import pytest
        pytest.skip(f"seed not found at {SEED}")
    text = SEED.read_text()
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip() == "[sanlock]")
    section = []
    for ln in lines[start:]:
        if not ln.strip():
            break
        section.append(ln.strip())
    assert section == SEED_SECTION.read_text().splitlines()


LOAD_SCRIPT = textwrap.dedent("""
    import json, sys
    from oslo_config import cfg
    from cinder import context, objects, rpc
    from cinder.common import config  # noqa
    from cinder.db import migration
    cfg.CONF(["--config-file", sys.argv[1]], project="cinder", default_config_files=[])
    objects.register_all()
    rpc.init(cfg.CONF)
    migration.db_sync()
    from cinder.volume import manager
    m = manager.VolumeManager(service_name="sanlock", host="cinder-1@sanlock")
    d = m.driver
    d.do_setup(context.get_admin_context())
    c = d.configuration
    from cinder_sharedlvm_driver import client
    print(json.dumps({
        "class": type(d).__module__ + "." + type(d).__name__,
        "enabled_backends": cfg.CONF.enabled_backends,
        "rpc_response_timeout": cfg.CONF.rpc_response_timeout,
        "opts": {k: c.safe_get(k) for k in (
            "agent_transport_url", "agent_response_timeout", "volume_group", "lvm_type",
            "lvm_mirrors", "target_protocol", "target_helper", "volume_backend_name",
            "volume_clear", "volume_clear_size", "agent_controller_topic",
            "agent_control_exchange")},
        "oslo_url": client.to_rabbit_url(c.agent_transport_url),
        "url_for_humans": d.client.url_for_humans,
        "cinder_host": d.cinder_host,
        "backend_name": d.backend_name,
        "driver_options": sorted(o.name for o in d.get_driver_options()),
    }))
""")


def test_seed_section_verbatim_loads_the_driver(tmp_path: Path):
    """A fresh process (cinder's global CONF untouched by other tests) runs cinder's own
    VolumeManager on a cinder.conf whose backend section is the seed's, unchanged. Nothing
    is contacted: the driver connects lazily."""
    (tmp_path / "locks").mkdir()
    conf = tmp_path / "cinder.conf"
    conf.write_text(cinder_conf_text(tmp_path, seed_section()))
    script = tmp_path / "load.py"
    script.write_text(LOAD_SCRIPT)
    r = subprocess.run([sys.executable, "-W", "ignore", str(script), str(conf)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-4000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["class"] == "cinder_sharedlvm_driver.driver.SharedLVMDriver"
    assert out["enabled_backends"] == ["sanlock"] and out["rpc_response_timeout"] == 2888
    assert out["opts"] == {
        "agent_transport_url": "amqp://aos:password@controller:5672/aos",
        "agent_response_timeout": 2888,
        "volume_group": "vol",
        "lvm_type": "default",
        "lvm_mirrors": 0,
        "target_protocol": "iscsi",
        "target_helper": "tgtadm",
        "volume_backend_name": "sanlock",
        "volume_clear": "none",
        "volume_clear_size": 100,
        "agent_controller_topic": "aos-controller",
        "agent_control_exchange": "openstack",
    }
    assert out["oslo_url"] == "rabbit://aos:password@controller:5672/aos"
    assert "password" not in out["url_for_humans"] and "controller:5672" in out["url_for_humans"]
    assert out["cinder_host"] == "cinder-1" and out["backend_name"] == "sanlock"
    assert {"agent_transport_url", "agent_response_timeout", "volume_group",
            "volume_clear"} <= set(out["driver_options"])


def test_thin_or_mirrored_configuration_is_refused(tmp_path: Path):
    (tmp_path / "locks").mkdir()
    conf = tmp_path / "cinder.conf"
    conf.write_text(cinder_conf_text(tmp_path, seed_section().replace(
        "lvm_type = default", "lvm_type = thin").replace("lvm_mirrors = 0", "lvm_mirrors = 2")))
    script = tmp_path / "load.py"
    script.write_text(LOAD_SCRIPT)
    r = subprocess.run([sys.executable, "-W", "ignore", str(script), str(conf)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "lvm_type = thin is not supported" in r.stderr
    assert "lvm_mirrors = 2 is not supported" in r.stderr


def test_driver_has_the_one_version():
    """The driver reports (volume stats' driver_version), installs (pyproject) and is packaged
    under the project's one version, ProductVersion.current: an operator comparing `aos-agent
    --version`, `dpkg -l` and Cinder's pool stats sees one number."""
    import re

    from cinder import objects

    objects.register_all()  # as cinder-volume does before it loads a driver
    import cinder_sharedlvm_driver
    from cinder_sharedlvm_driver import driver

    swift = (REPO_ROOT / "Sources" / "AOSRuntime" / "ProductVersion.swift").read_text()
    m = re.search(r'public static let current = "([^"]+)"', swift)
    assert m, "no ProductVersion.current"
    pyproject = (REPO_ROOT / "deploy" / "cinder" / "pyproject.toml").read_text()
    assert re.findall(r'^version = "([^"]+)"$', pyproject, re.M) == [m.group(1)]
    assert cinder_sharedlvm_driver.__version__ == m.group(1)
    assert driver.SharedLVMDriver.VERSION == m.group(1)
