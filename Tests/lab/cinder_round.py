"""One attach/detach round of the Cinder driver against the lab's real LVM (issue 6).

Run with the Cinder test venv's python (.venv/cinder, made by scripts/setup.sh):
    cinder_round.py AMQP_URL CONTROLLER_TOPIC VG HOST1 HOST2

Loads SharedLVMDriver through cinder's VolumeManager from the seed's [sanlock] section (only
the URL, VG and controller topic changed), creates a 64 MiB LV through the controller, and
then, step by step, prints one JSON line and waits for a line on stdin before going on, so the
caller can look into the guests between steps:
    attached      initialize_connection on HOST1 (exclusive): {"device_path": ...}
    shared        a second attachment on HOST2 (live-migration style): both shared
    handed_back   terminate_connection on HOST1: exclusive again on HOST2
    detached      terminate_connection on HOST2, volume deleted
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    url, topic, vg, h1, h2 = sys.argv[1:6]
    spec = importlib.util.spec_from_file_location("cinder_conftest", REPO / "Tests" / "cinder" / "conftest.py")
    cc = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(cc)

    work = Path(tempfile.mkdtemp(prefix="aos-lab-cinder-"))
    (work / "locks").mkdir()
    section = (cc.seed_section(url).replace(f"volume_group = {cc.VG}", f"volume_group = {vg}")
               + f"agent_controller_topic = {topic}\n")
    conf = work / "cinder.conf"
    conf.write_text(cc.cinder_conf_text(work, section))
    env = cc.CinderEnv(conf)

    from cinder.volume import manager as volume_manager

    mgr = volume_manager.VolumeManager(service_name=cc.BACKEND, host=f"{h1}@{cc.BACKEND}")
    mgr.driver.do_setup(env.ctx)
    cc.wait_for(lambda: mgr.driver.check_for_setup_error() or True, timeout=60, what="driver setup check")
    drv = mgr.driver

    vid = str(uuid.uuid4())
    name = f"volume-{vid}"
    drv.client.call("create_volume", what="lab cinder round", vg=vg, name=name, size_bytes=64 << 20)

    def step(name_: str, **data) -> None:
        print(json.dumps({"step": name_, **data}), flush=True)
        if sys.stdin.readline().strip() != "go":
            raise SystemExit("caller stopped the round")

    def attachment(host: str, instance: str) -> dict:
        return {"attach_status": "attached", "instance_uuid": instance, "connector": {"host": host}}

    instance = str(uuid.uuid4())
    vol = {"id": vid, "name": name, "multiattach": False, "volume_attachment": []}
    info = drv.initialize_connection(vol, {"host": h1})
    step("attached", lv=name, info=info)

    # Live migration: the same instance attached on both hosts for a while.
    vol["volume_attachment"] = [attachment(h1, instance)]
    drv.initialize_connection(vol, {"host": h2})
    step("shared")

    vol["volume_attachment"] = [attachment(h1, instance), attachment(h2, instance)]
    drv.terminate_connection(vol, {"host": h1})
    step("handed_back")

    vol["volume_attachment"] = [attachment(h2, instance)]
    drv.terminate_connection(vol, {"host": h2})
    vol["volume_attachment"] = []
    drv.delete_volume(vol)
    print(json.dumps({"step": "detached"}), flush=True)
    drv.client.close()


if __name__ == "__main__":
    main()
