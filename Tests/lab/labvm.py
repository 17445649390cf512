#!/usr/bin/env python3
"""The VM lab: two qemu (TCG) guests sharing one raw disk, with lvm2 + lvmlockd + sanlock.

Used by Tests/lab/conftest.py and by scripts/lab.sh (up / down / status / exec / console).

Layout of a run directory (RUN):
    RUN/shared.img             the shared "LUN" (raw, sparse), on every guest as virtio serial shared0
                               (in the multipath lab, AOS_LAB_MPATH=1: on lab1 as two virtio-scsi
                               paths with one WWN under dm-multipath, /dev/mapper/mpshared)
    RUN/<name>.state.img       each guest's own small disk (serial state0) for the agent's state_dir
    RUN/<name>.pid|.qga|.qmp|.serial|.console.log|.qemu.log
    RUN/share/                 9p share (tag host0, /mnt/host in the guests): aos-agent binary,
    RUN/share/debs/            the agent's Debian packages, installed by the guests' /init at boot
    RUN/share/<name>/          per guest: aos.conf, agent.out (READY lines), agent.log (stderr)
    RUN/lab.json               what `up` started (names, host ids, broker URL, VG)

Command line:
    labvm.py up RUN --image DIR [--agent BIN] [--debs DIR] [--amqp-url URL]
                                                     boot both guests, create the VG
    labvm.py down RUN                                            stop every qemu of RUN by pid
    labvm.py exec RUN NAME -- CMD…  |  labvm.py sh RUN NAME 'SCRIPT'
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qga import QGA, QGAError, Result  # noqa: E402

VG = "vglab"
LAB_CONTROLLER_TOPIC = "aos-lab-controller"
SHARED_DISK = "/dev/disk/by-id/virtio-shared0"
# On lab1 the shared disk is reached through a device-mapper device of this name (a multipath
# stand-in, kernel argument aos.path_dm=1, guest/lab-path): LVM sees the PV only there, and the
# fault-injection tests suspend it or load an error table into it.
PATH_DM_DEVICE = "/dev/mapper/sanlock"
# The multipath lab (AOS_LAB_MPATH=1, kernel argument aos.mpath=1, guest/lab-mpath): lab1 reaches
# the shared disk through two virtio-scsi paths (two controllers, the same backing file and WWN)
# under a real dm-multipath map of this name with queue_if_no_path; LVM sees the PV only there.
# lab1 then has no lab-path stand-in (Tests/lab/test_lab_fencing.py is skipped in that lab).
MPATH_DEVICE = "/dev/mapper/mpshared"
MPATH_WWN = "0x5000c500a0a0a001"
# lvmlockd --sanlock-timeout: sanlock's I/O timeout. 2 s was stable over many runs (notes).
SANLOCK_TIMEOUT = int(os.environ.get("AOS_LAB_SANLOCK_TIMEOUT", "2"))
# 4 GiB (sparse): room for the jobs tests' 1 GiB source, copy and scratch LVs next to the
# 256 MiB lvmlock LV and the other tests' small LVs (Tests/lab/test_lab_jobs.py).
SHARED_SIZE = os.environ.get("AOS_LAB_SHARED_SIZE", "4G")
STATE_SIZE = 32 << 20
GUEST_MEM_MB = int(os.environ.get("AOS_LAB_GUEST_MEM_MB", "1024"))


def log(msg: str) -> None:
    print(f"[lab {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def guest_url(amqp_url: str) -> str:
    """The host's broker as a guest sees it: qemu user networking maps 10.0.2.2 to the host's
    127.0.0.1 (the broker sees a loopback connection, so the guest user works)."""
    parts = urlsplit(amqp_url)
    netloc = parts.netloc
    creds, _, hostport = netloc.rpartition("@")
    port = hostport.rsplit(":", 1)[1] if ":" in hostport else "5672"
    return urlunsplit((parts.scheme, f"{creds + '@' if creds else ''}10.0.2.2:{port}", parts.path or "/", "", ""))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pid_is_our_qemu(pid: int, run: Path) -> bool:
    """Guards against pid reuse: the process must be qemu and name this run directory."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return "qemu-system" in cmdline and str(run) in cmdline


@dataclass
class Guest:
    run: Path
    name: str
    host_id: int
    image: Path
    path_dm: bool = False        # shared disk behind /dev/mapper/sanlock (see PATH_DM_DEVICE)
    mpath: bool = False          # shared disk through two SCSI paths and multipath (see MPATH_DEVICE)
    qga: QGA = field(init=False)

    def __post_init__(self) -> None:
        self.qga = QGA(str(self.path("qga")))

    # ---- files ------------------------------------------------------------------------
    def path(self, suffix: str) -> Path:
        return self.run / f"{self.name}.{suffix}"

    @property
    def share(self) -> Path:
        return self.run / "share" / self.name

    @property
    def shared_disk(self) -> str:
        """The shared disk as LVM on this guest sees it."""
        if self.mpath:
            return MPATH_DEVICE
        return PATH_DM_DEVICE if self.path_dm else SHARED_DISK

    def pid(self) -> int | None:
        try:
            return int(self.path("pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        pid = self.pid()
        return pid is not None and pid_alive(pid) and pid_is_our_qemu(pid, self.run)

    # ---- lifecycle --------------------------------------------------------------------
    def qemu_argv(self) -> list[str]:
        run = self.run
        append = (f"console=ttyS0 net.ifnames=0 quiet panic=5 aos.hostname={self.name} "
                  f"aos.host_id={self.host_id} aos.sanlock_timeout={SANLOCK_TIMEOUT}"
                  + (" aos.path_dm=1" if self.path_dm else "")
                  + (" aos.mpath=1" if self.mpath else ""))
        return [
            "qemu-system-x86_64", "-name", f"aos-lab-{self.name}",
            "-accel", "tcg", "-smp", "1", "-m", str(GUEST_MEM_MB),
            "-kernel", str(self.image / "vmlinuz"), "-initrd", str(self.image / "initrd.cpio"),
            "-append", append,
            "-display", "none", "-vga", "none", "-nodefaults", "-no-user-config",
            "-daemonize", "-pidfile", str(self.path("pid")),
            # Serial console: a socket for an interactive shell, everything logged to a file.
            "-chardev", f"socket,id=ser0,path={self.path('serial')},server=on,wait=off,"
                        f"logfile={self.path('console.log')},logappend=on",
            "-serial", "chardev:ser0",
            # The shared LUN. cache=writeback: both qemu processes go through the host's page
            # cache. NEVER cache=none: two guests writing different 512-byte sectors of one
            # 4 KiB block lose writes, and sanlock then drops the lockspace.
            *self.shared_disk_argv(),
            # This guest's own disk (agent state_dir survives reboots).
            "-drive", f"file={self.path('state.img')},format=raw,if=none,id=state,cache=writeback",
            "-device", "virtio-blk-pci,drive=state,serial=state0",
            "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0",
            "-device", "virtio-serial-pci",
            "-chardev", f"socket,path={self.path('qga')},server=on,wait=off,id=qga0",
            "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
            "-virtfs", f"local,path={run / 'share'},mount_tag=host0,security_model=none,id=fs0",
            "-qmp", f"unix:{self.path('qmp')},server=on,wait=off",
        ]

    def shared_disk_argv(self) -> list[str]:
        drive = (f"file={self.run / 'shared.img'},format=raw,if=none,cache=writeback,"
                 "aio=threads,file.locking=off")
        if not self.mpath:
            return ["-drive", f"{drive},id=shared", "-device", "virtio-blk-pci,drive=shared,share-rw=on,serial=shared0"]
        # Two paths to one LUN: a virtio-scsi controller per path (two HBAs), one scsi-hd on
        # each, both on the same file (two block backends, share-rw) with the same WWN and
        # serial, so the guest's multipath sees one WWID with two paths.
        argv: list[str] = []
        for i in range(2):
            argv += ["-device", f"virtio-scsi-pci,id=scsi{i}",
                     "-drive", f"{drive},id=shared{i}",
                     "-device", f"scsi-hd,bus=scsi{i}.0,drive=shared{i},share-rw=on,wwn={MPATH_WWN},serial=shared0"]
        return argv

    def start(self) -> None:
        if self.running():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid()})")
        for suffix in ("pid", "qga", "qmp", "serial"):
            self.path(suffix).unlink(missing_ok=True)
        if not self.path("state.img").exists():
            with open(self.path("state.img"), "wb") as f:
                f.truncate(STATE_SIZE)
        self.share.mkdir(parents=True, exist_ok=True)
        with open(self.path("qemu.log"), "ab") as qlog:
            subprocess.run(self.qemu_argv(), stdin=subprocess.DEVNULL, stdout=qlog, stderr=qlog,
                           check=True, timeout=60)
        self.qga.close()
        log(f"{self.name}: qemu pid {self.pid()}")

    def wait_booted(self, timeout: float = 300, previous_boot: str | None = None) -> float:
        """Until the guest agent answers and /init has finished (a new boot if previous_boot)."""
        start = time.monotonic()
        deadline = start + timeout
        while True:
            if not self.running():
                raise RuntimeError(f"{self.name}: qemu is not running\n{self.console_tail()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.name} did not boot within {timeout}s\n{self.console_tail()}")
            try:
                self.qga.ping(timeout=min(remaining, 10))
                r = self.qga.run(["/bin/sh", "-c", "cat /run/lab-booted && cat /proc/sys/kernel/random/boot_id"],
                                 timeout=10)
                if r.exit == 0 and (previous_boot is None or previous_boot not in r.stdout):
                    return time.monotonic() - start
            except (OSError, TimeoutError, QGAError, ValueError):
                self.qga.close()
            time.sleep(0.5)

    def boot_id(self) -> str:
        return self.sh("cat /proc/sys/kernel/random/boot_id", check=True).stdout.strip()

    def qmp(self, command: str, timeout: float = 10) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(self.path("qmp")))
            f = s.makefile("rwb")
            json.loads(f.readline())  # greeting
            for cmd in ("qmp_capabilities", command):
                f.write(json.dumps({"execute": cmd}).encode() + b"\n")
                f.flush()
                while True:
                    msg = json.loads(f.readline())
                    if "return" in msg or "error" in msg:
                        break
            return msg

    def stop(self, grace: float = 10) -> None:
        """Power off: QMP quit, then SIGTERM/SIGKILL by pid. Never leaves the qemu behind."""
        self.qga.close()
        pid = self.pid()
        if pid is None or not pid_alive(pid) or not pid_is_our_qemu(pid, self.run):
            return
        try:
            self.qmp("quit", timeout=3)
        except (OSError, ValueError):
            pass
        for sig, wait in ((None, grace), (signal.SIGTERM, 5), (signal.SIGKILL, 10)):
            if sig is not None and pid_alive(pid):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not pid_alive(pid):
                break
        if pid_alive(pid):
            raise RuntimeError(f"{self.name}: qemu pid {pid} survived SIGKILL")

    def console_tail(self, lines: int = 40) -> str:
        try:
            text = self.path("console.log").read_text(errors="replace")
        except OSError:
            return "(no console log)"
        return f"--- {self.name} console (tail) ---\n" + "\n".join(text.splitlines()[-lines:])

    # ---- commands ---------------------------------------------------------------------
    def run_cmd(self, argv: Sequence[str], timeout: float = 120, check: bool = False) -> Result:
        return self.qga.run(argv, timeout=timeout, check=check)

    def sh(self, script: str, timeout: float = 120, check: bool = False) -> Result:
        return self.qga.sh(script, timeout=timeout, check=check)

    # ---- the agent --------------------------------------------------------------------
    def write_agent_config(self, amqp_url: str, rpc_host: str, extra: str = "") -> None:
        self.share.mkdir(parents=True, exist_ok=True)
        (self.share / "aos.conf").write_text(
            "# written by Tests/lab/labvm.py\n"
            "[DEFAULT]\n"
            f"transport_url = {guest_url(amqp_url)}\n"
            f"host = {rpc_host}\n"
            "\n[agent]\n"
            "lvm_backend = real\n"
            f"volume_groups = {VG}\n"
            "state_dir = /var/lib/aos-agent\n"
            "lvmlocal_conf = /etc/lvm/lvmlocal.conf\n"
            "announce_interval = 5\n"
            # A topic of their own, so the lab controller hears only the real agents
            # (the simulated comparison agents announce to the default topic).
            f"controller_topic = {LAB_CONTROLLER_TOPIC}\n"
            "pv_wait_timeout = 300\n"
            # No libvirt in the guests: lockspace recovery (aosctl recover) has no VMs to stop.
            "libvirt_uri =\n"
            # No watchdog device in the guests (sanlock -w 0, no wdmd): an agent started while
            # lab-fence is on would refuse to start without this (issue 15, docs/operations.md).
            "risk_stale_writes_without_watchdog = true\n"
            "log_level = debug\n"
            + extra
            # The lab tests LVM, not the broker's trust model (Tests/interop/test_authorization.py does).
            + "\n[auth]\nenforce = false\n"
        )

    def agent_output(self) -> str:
        try:
            return (self.share / "agent.out").read_text(errors="replace")
        except OSError:
            return ""

    def agent_log(self) -> str:
        try:
            return (self.share / "agent.log").read_text(errors="replace")
        except OSError:
            return ""

    def agent_start(self, wait_ready: bool = True, timeout: float = 300) -> float:
        self.sh("lab-agent start", check=True)
        return self.agent_wait_ready(timeout) if wait_ready else 0.0

    def agent_wait_ready(self, timeout: float = 300) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if "READY host=" in self.agent_output():
                return time.monotonic() - start
            time.sleep(0.2)
        raise TimeoutError(f"{self.name}: aos-agent not READY within {timeout}s\n"
                           f"--- agent.log (tail) ---\n" + "\n".join(self.agent_log().splitlines()[-60:]))

    def agent_stop(self) -> Result:
        return self.sh("lab-agent stop", timeout=60, check=True)


class Lab:
    def __init__(self, run: Path, image: Path | None = None, names: Sequence[str] = ("lab1", "lab2")) -> None:
        self.run = run.resolve()
        meta = self.meta()
        if image is None:
            image = Path(meta["image"]) if meta.get("image") else None
        if image is None:
            raise ValueError("image directory unknown")
        self.image = image.resolve()
        # lab1 reaches the shared disk through /dev/mapper/sanlock (outages are injected there),
        # or, in the multipath lab, through real dm-multipath (outages on its SCSI paths).
        # AOS_LAB_MPATH when set, else what the run directory's lab.json says (an attached lab).
        env_mpath = os.environ.get("AOS_LAB_MPATH")
        self.mpath = env_mpath == "1" if env_mpath is not None else bool(meta.get("mpath", False))
        self.guests = [Guest(self.run, n, i + 1, self.image, path_dm=(i == 0 and not self.mpath),
                             mpath=(i == 0 and self.mpath)) for i, n in enumerate(names)]

    def meta(self) -> dict:
        try:
            return json.loads((self.run / "lab.json").read_text())
        except (OSError, ValueError):
            return {}

    def save_meta(self, **kv: object) -> None:
        meta = self.meta()
        meta.update(kv)
        (self.run / "lab.json").write_text(json.dumps(meta, indent=2) + "\n")

    def prepare(self, agent_bin: Path | None, debs: Path | None = None) -> None:
        """The shared disk, and the agent for the guests: its packages in share/debs (the guests'
        /init installs them with dpkg at every boot), the same binary in share/aos-agent (for
        commands that run it from the host's share, and for the simulated agents)."""
        (self.run / "share").mkdir(parents=True, exist_ok=True)
        shared = self.run / "shared.img"
        if not shared.exists():
            subprocess.run(["truncate", "-s", SHARED_SIZE, str(shared)], check=True)
        if agent_bin is not None:
            dst = self.run / "share" / "aos-agent"
            shutil.copy2(agent_bin, dst)
            dst.chmod(0o755)
        if debs is not None:
            packages = sorted(debs.glob("*.deb"))
            if not packages:
                raise ValueError(f"no .deb in {debs}")
            dst_dir = self.run / "share" / "debs"
            shutil.rmtree(dst_dir, ignore_errors=True)
            dst_dir.mkdir()
            for deb in packages:
                shutil.copy2(deb, dst_dir / deb.name)
        self.save_meta(image=str(self.image), names=[g.name for g in self.guests], vg=VG, mpath=self.mpath)

    def boot(self, timeout: float = 300) -> dict[str, float]:
        t0 = time.monotonic()
        for g in self.guests:
            g.start()
        times = {}
        for g in self.guests:
            g.wait_booted(timeout)
            times[g.name] = time.monotonic() - t0
            log(f"{g.name}: booted, guest agent answers ({times[g.name]:.1f}s)")
        return times

    def create_vg(self) -> dict[str, float]:
        """vgcreate --shared on the bare disk on host 1 (starts its lockspace), lock-start on the others."""
        first, *others = self.guests
        t = {}
        r = first.run_cmd(["vgcreate", "--shared", "--lock-type", "sanlock", VG, first.shared_disk], timeout=300)
        if r.exit != 0:
            raise RuntimeError(f"vgcreate failed on {first.name}: {r}")
        t["vgcreate"] = r.seconds
        log(f"{first.name}: vgcreate --shared --lock-type sanlock {VG} {first.shared_disk} ({r.seconds:.1f}s)")
        for g in others:
            r = g.run_cmd(["vgchange", "--lock-start", VG], timeout=300)
            if r.exit != 0:
                raise RuntimeError(f"lock-start failed on {g.name}: {r}")
            t[f"lock_start_{g.name}"] = r.seconds
            log(f"{g.name}: vgchange --lock-start {VG} ({r.seconds:.1f}s)")
        return t

    def down(self) -> None:
        errors = []
        for g in self.guests:
            try:
                g.stop()
            except Exception as e:  # keep stopping the others
                errors.append(f"{g.name}: {e}")
        if errors:
            raise RuntimeError("; ".join(errors))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up")
    up.add_argument("run", type=Path)
    up.add_argument("--image", type=Path, required=True)
    up.add_argument("--agent", type=Path)
    up.add_argument("--debs", type=Path, help="directory with aos-common and aos-agent .deb")
    up.add_argument("--amqp-url")
    up.add_argument("--no-vg", action="store_true", help="boot only")
    down = sub.add_parser("down")
    down.add_argument("run", type=Path)
    ex = sub.add_parser("exec")
    ex.add_argument("run", type=Path)
    ex.add_argument("name")
    ex.add_argument("argv", nargs="+")
    shp = sub.add_parser("sh")
    shp.add_argument("run", type=Path)
    shp.add_argument("name")
    shp.add_argument("script")
    st = sub.add_parser("status")
    st.add_argument("run", type=Path)
    a = p.parse_args()

    if a.cmd == "up":
        a.run.mkdir(parents=True, exist_ok=True)
        lab = Lab(a.run, a.image)
        lab.prepare(a.agent, a.debs)
        try:
            times = lab.boot()
            if not a.no_vg:
                times.update(lab.create_vg())
            if a.amqp_url:
                tag = os.environ.get("AOS_LAB_TAG", "")
                for g in lab.guests:
                    rpc_host = f"{g.name}{'-' + tag if tag else ''}"
                    g.write_agent_config(a.amqp_url, rpc_host)
                    g.sh("touch /var/lib/aos-agent/autostart", check=True)
                    g.agent_start()
                    log(f"{g.name}: aos-agent READY as {rpc_host}")
                lab.save_meta(amqp_url=a.amqp_url)
        except BaseException:
            lab.down()
            raise
        print(json.dumps(times))
        return 0
    lab = Lab(a.run)
    if a.cmd == "down":
        lab.down()
        return 0
    if a.cmd == "status":
        for g in lab.guests:
            print(f"{g.name}: {'running pid ' + str(g.pid()) if g.running() else 'stopped'}")
        return 0
    g = next((g for g in lab.guests if g.name == a.name), None)
    if g is None:
        p.error(f"no guest {a.name}")
    r = g.run_cmd(a.argv, timeout=600) if a.cmd == "exec" else g.sh(a.script, timeout=600)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    return r.exit if r.exit is not None else 128 + (r.signal or 0)


if __name__ == "__main__":
    sys.exit(main())
