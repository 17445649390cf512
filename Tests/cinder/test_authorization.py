"""The real driver, inside cinder's VolumeManager, against a controller that enforces
authorization (docs/security.md): per-role broker users made by `aosctl broker-setup`, the
driver logged in as aos-driver and signing with agent_signing_key_file. Without the key the
controller refuses it, and the driver says what to configure.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from cinder_sharedlvm_driver import exception as sl_exc
from cinder_sharedlvm_driver import signing
from conftest import VG, Volumes, wait_for

pytestmark = pytest.mark.timeout(240)
GROUP = "sanlock-signed"


class SecuredCluster:
    def __init__(self, start, broker_env: dict[str, str], amqp_url: str, tmp: Path, swift_bin: Path) -> None:
        tag = uuid.uuid4().hex[:8]
        self.vhost = f"aos-cinder-{tag}"
        self.host_a, self.host_b = f"sa-{tag}", f"sb-{tag}"
        self.topic = f"aos-controller-{tag}"
        self.hostport = amqp_url.split("@", 1)[1].split("/", 1)[0]
        self.passwords = tmp / "passwords"
        setup = subprocess.run(
            [str(swift_bin / "aosctl"), "broker-setup", "--hosts", f"{self.host_a},{self.host_b}",
             "--vhost", self.vhost, "--controller-topic", self.topic, "--password-dir", str(self.passwords),
             "--json"], capture_output=True, text=True, timeout=30, check=True)
        ctl = ["bash", broker_env["AOS_TEST_BROKER_CTL"], "ctl", broker_env["AOS_TEST_BROKER_DIR"]]
        users = subprocess.run([*ctl, "list_users", "--silent"], capture_output=True, text=True, check=True).stdout
        for argv in json.loads(setup.stdout):
            if argv[0] == "add_user" and f"{argv[1]}\t" in users:
                argv = ["change_password", *argv[1:]]  # made by another test module
            subprocess.run([*ctl, *argv], capture_output=True, text=True, timeout=120, check=True)
        self.signer = signing.RequestSigner.generate()
        self.key_file = tmp / "driver.key"
        self.key_file.write_text(self.signer.private_key + "\n")
        os.chmod(self.key_file, 0o600)
        self.conf = tmp / "aos.conf"
        self.conf.write_text(f"[auth]\nenforce = true\ndriver_public_keys = {self.signer.public_key}\n")
        os.chmod(self.conf, 0o600)
        self.tmp = tmp
        for host, host_id in ((self.host_a, 1), (self.host_b, 2)):
            start("aos-agent", "--config", self.conf, "--set", f"DEFAULT.host={host}",
                  "--set", "auth.enforce=true", "--set", "agent.lvm_backend=simulated",
                  "--set", f"agent.simulated_state_file={tmp / 'cluster.json'}",
                  "--set", f"agent.volume_groups={VG}", "--set", f"agent.state_dir={tmp / host}",
                  "--set", "agent.announce_interval=1", "--set", "agent.pv_wait_timeout=0",
                  "--set", f"agent.controller_topic={self.topic}", "--host-id", str(host_id),
                  env={"AOS_DEFAULT_TRANSPORT_URL": self.url(f"aos-agent-{host}")},
                  ready=f"READY host={host}", timeout=60)
        start("aos-controller", "--config", self.conf, "--set", f"DEFAULT.host=ctl-{tag}",
              "--set", "auth.enforce=true", "--set", f"controller.topic={self.topic}",
              "--set", "controller.agent_stale_after=2", "--set", "controller.agent_down_after=3",
              env={"AOS_DEFAULT_TRANSPORT_URL": self.url("aos-controller")}, ready="READY", timeout=30)

    def url(self, user: str) -> str:
        password = (self.passwords / user).read_text().strip()
        return f"rabbit://{user}:{password}@{self.hostport}/{self.vhost}"


@pytest.fixture(scope="module")
def secured(module_spawn, broker_env, amqp_url, tmp_path_factory, swift_bin) -> SecuredCluster:
    return SecuredCluster(module_spawn, broker_env, amqp_url, tmp_path_factory.mktemp("secured"), swift_bin)


def manager_for(cinder_env: Any, c: SecuredCluster, key_file: str | None) -> Any:
    from cinder.volume import manager as volume_manager

    conf = cinder_env.CONF
    # The manager registers the backend's options; the driver reads them in do_setup.
    mgr = volume_manager.VolumeManager(service_name=GROUP, host=f"{c.host_a}@{GROUP}")
    conf.set_override("agent_transport_url", c.url("aos-driver"), group=GROUP)
    conf.set_override("agent_controller_topic", c.topic, group=GROUP)
    conf.set_override("agent_signing_key_file", key_file, group=GROUP)
    try:
        mgr.driver.do_setup(cinder_env.ctx)
    finally:
        for key in ("agent_transport_url", "agent_controller_topic", "agent_signing_key_file"):
            conf.clear_override(key, group=GROUP)
    return mgr


def test_a_signing_driver_works_through_the_volume_manager(cinder_env, secured) -> None:
    mgr = manager_for(cinder_env, secured, str(secured.key_file))
    try:
        wait_for(lambda: mgr.driver.check_for_setup_error() or True, timeout=30, what="setup check")
        mgr.driver.set_initialized()
        mgr.stats = {"pools": {}, "allocated_capacity_gb": 0}
        vols = Volumes(cinder_env, mgr)
        vol = vols.new()
        assert vol.status == "available", vol.status
        att, info = vols.attach(vol, secured.host_b)
        assert info["driver_volume_type"] == "local"
        vols.detach(vol, att)
        mgr.delete_volume(cinder_env.ctx, vol)
    finally:
        mgr.driver.client.close()


def test_without_its_key_the_driver_is_refused_with_a_hint(cinder_env, secured) -> None:
    mgr = manager_for(cinder_env, secured, None)
    try:
        with pytest.raises(sl_exc.NotAuthorized) as info:
            mgr.driver.client.list_agents(what="list the agents")
        text = str(info.value)
        assert "not_authorized" in text and "agent_signing_key_file" in text
    finally:
        mgr.driver.client.close()


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "driver.key"
    key.write_text(signing.RequestSigner.generate().private_key + "\n")
    os.chmod(key, 0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        signing.RequestSigner.from_file(str(key))
