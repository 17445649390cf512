"""aosctl recover end to end with real processes (issue 7): a simulated agent whose VMs are
libvirt test-driver domains (a real virsh, no hypervisor), the real `aos-agent fence` kill
command, and the real aosctl. The fence command is what lvmlockctl would run; here it is run
by hand, since the simulator has no sanlock to run it. The VG's real-LVM behaviour is tested
in the VM lab (Tests/lab/test_lab_fencing.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from test_controller_e2e import VG, Cluster, wait_for

pytestmark = pytest.mark.timeout(240)

NODE_XML = """<node>
<domain type='test'><name>vm-db</name><memory>65536</memory><os><type>hvm</type></os>
  <devices>
    <disk type='block' device='disk'><source dev='/dev/{vg}/volume-db'/><target dev='vda'/></disk>
  </devices></domain>
<domain type='test'><name>vm-web</name><memory>65536</memory><os><type>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><source file='/var/lib/libvirt/images/web.qcow2'/><target dev='vda'/></disk>
  </devices></domain>
</node>
"""


@pytest.fixture
def host(spawn, amqp_url, tmp_path, swift_bin) -> tuple[Cluster, str]:
    if not shutil.which("virsh"):
        pytest.skip("virsh (libvirt-clients) is not installed")
    node = tmp_path / "node.xml"
    node.write_text(NODE_XML.format(vg=VG))
    c = Cluster(spawn, amqp_url, tmp_path, swift_bin)
    c.conf.write_text(f"[agent]\nlibvirt_uri = test://{node}\n")
    c.start_agent(c.host_a, 1)
    return c, c.host_a


def run_json(c: Cluster, *args: str) -> tuple[int, dict]:
    r = c.aosctl(*args, "--json", timeout=120)
    assert r.stdout.strip(), f"no JSON on stdout (exit {r.returncode}): {r.stderr}"
    return r.returncode, json.loads(r.stdout)


def test_fence_then_recover_with_vms(host, swift_bin: Path) -> None:
    c, h = host
    state = c.tmp / h
    for args in (["volume", "create", "volume-db", "--size", "1G"],
                 ["volume", "create", "volume-shared", "--size", "1G"],
                 ["volume", "activate", "volume-db", "--host", h, "--exclusive"],
                 ["volume", "activate", "volume-shared", "--host", h, "--shared"]):
        r = c.aosctl("--direct", h, *args, "--vg", VG)
        assert r.returncode == 0, r.stderr

    # What lvmlockctl --kill runs: exit 0 (all of the VG's I/O failed), record, notification.
    fence = subprocess.run([str(swift_bin / "aos-agent"), "fence", "--config", str(c.conf),
                            "--set", f"agent.state_dir={state}", "--set", "agent.lvm_backend=simulated", VG],
                           capture_output=True, text=True, timeout=60)
    assert fence.returncode == 0, fence.stderr
    record = json.loads((state / f"lockspace-lost-{VG}.json").read_text())
    assert record["complete"] is True and record["source"] == "kill_command"

    # The agent knows at once: lost, fenced, and calls fail fast with the recovery hint.
    def lost():
        r = c.aosctl("--direct", h, "agents", "--json")
        return json.loads(r.stdout)["vgs"][VG] if r.returncode == 0 else None
    entry = wait_for(lambda: (e := lost()) and e.get("lockspace") == "lost" and e, what="lockspace lost")
    assert entry["fenced"]["complete"] is True
    r = c.aosctl("--direct", h, "volume", "activate", "volume-db", "--host", h, "--shared", "--vg", VG)
    assert r.returncode == 1 and "lockspace_lost" in r.stderr and f"aosctl recover --host {h} --vg {VG}" in r.stderr

    # The plan changes nothing and names the LVs, their modes and the VM on them.
    code, plan = run_json(c, "recover", "--host", h)
    assert code == 0 and plan["executed"] is False and plan["result"]["nothing_to_do"] is False
    lvs = {lv["name"]: lv["mode"] for lv in plan["plan"]["lvs"]}
    assert lvs == {"volume-db": "exclusive", "volume-shared": "shared"}
    assert [(v["name"], v["running"]) for v in plan["plan"]["vms"]] == [("vm-db", True)]

    code, done = run_json(c, "recover", "--host", h, "--execute")
    assert code == 0, done
    steps = {s["step"]: s for s in done["steps"]}
    assert [s["step"] for s in done["steps"]] == ["fence", "wait_path", "stop_vms", "deactivate", "drop",
                                                    "lock_start", "reactivate", "start_vms", "finish"]
    assert steps["fence"]["status"] == "skipped"  # the kill command did it
    assert steps["stop_vms"]["stopped"] == ["vm-db"]
    assert steps["start_vms"]["started"] == ["vm-db"]
    reactivated = sorted((x["name"], x["mode"]) for x in done["result"]["reactivated"])
    assert reactivated == [("volume-db", "exclusive"), ("volume-shared", "shared")]
    assert done["result"]["left_alone"] == []
    assert all(isinstance(s["seconds"], float) for s in done["steps"])

    health = json.loads(c.aosctl("--direct", h, "agents", "--json").stdout)
    assert health["vgs"][VG]["lockspace"] == "started" and "fenced" not in health["vgs"][VG]
    active = sorted((a["name"], a["mode"]) for a in health["active_lvs"])
    assert active == [("volume-db", "exclusive"), ("volume-shared", "shared")]
    assert (state / f"lockspace-lost-{VG}.json").exists() is False

    # A second run is a no-op.
    code, again = run_json(c, "recover", "--host", h, "--execute")
    assert code == 0 and again["result"]["nothing_to_do"] is True and again["steps"] == []


def test_recover_of_an_unknown_host_says_so(host) -> None:
    c, _ = host
    r = c.aosctl("recover", "--host", "no-such-host-xyz", "--vg", VG, "--timeout", "5")
    assert r.returncode == 5, (r.returncode, r.stderr)
    assert "no-such-host-xyz" in r.stderr
