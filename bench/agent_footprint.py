#!/usr/bin/env python3
"""Agent footprint: RSS and CPU of a connected, idle aos-agent, then after a burst of calls.

Starts a private broker (scripts/rabbitmq-private.sh; or uses --url), an oslo.messaging server on
the controller topic that counts the agent's announcements, and the agent (simulated LVM, by
default the shipped-style static release build in .build-static). Waits until the agent is READY
and has announced, lets it idle, and prints VmRSS, RssAnon, RssFile, RssShmem, threads and the CPU
ticks (utime + stime, 1/100 s) it used while idle; the file-backed RSS by mapping (the binary, each
shared library). Then sends a burst of calls (creates, `list_lvs` of every LV created, `health`,
`lv_info`; CONCURRENCY in flight) and prints the same after the burst and again AFTER s later.

  .venv/bin/python bench/agent_footprint.py [--agent PATH] [--url AMQP_URL] [--idle 30]
      [--burst 500] [--lvs 300] [--after 30] [--concurrency 8] [--announce-interval 10]
      [--label TEXT] [--set SECTION.KEY=VALUE ...]

`--set agent.release_startup_pages=false` keeps the start-up pages the agent otherwise pages out
once it serves and has announced (the agent's log line saying what it released is printed).

Prints `footprint label=… phase=idle|burst|after key=value…` lines (kB) and a summary line
`footprint label=… idle_rss_kb=… after_rss_kb=… after/idle=…`. No timing is asserted.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import oslo_messaging

ROOT = Path(__file__).resolve().parent.parent
VG = "vg1"


def make_oslo_conf() -> Any:
    """A private ConfigOpts for oslo.messaging (as Tests/interop/conftest.py's make_oslo_conf)."""
    import importlib

    from oslo_config import cfg

    conf = cfg.ConfigOpts()
    for module, attr, group in (
        ("oslo_messaging._tracing.client", "oslo_messaging_tracing", "oslo_messaging_tracing"),
        ("oslo_messaging._metrics.client", "oslo_messaging_metrics", "oslo_messaging_metrics"),
    ):
        try:
            opts = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            continue
        conf.register_opts(opts, group=group)
    conf([], project="aos-footprint")
    return conf


def status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "Threads"):
                out[key] = int(rest.split()[0])
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    out["cpu_ticks"] = int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)
    return out


def file_rss_by_mapping(pid: int) -> dict[str, int]:
    """Rss (kB) of each file-backed mapping, summed per file name and permissions (`libc.so.6:r-x`)."""
    sums: dict[str, int] = {}
    current = ""
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split(maxsplit=5)
            if len(first) >= 5 and "-" in first[0] and ":" not in first[0]:
                path = first[5].strip() if len(first) == 6 else ""
                current = f"{Path(path).name}:{first[1][:3]}" if path.startswith("/") else ""
            elif line.startswith("Rss:") and current:
                sums[current] = sums.get(current, 0) + int(line.split()[1])
    return sums


def sections(binary: str) -> list[tuple[str, int, int]]:
    """(name, file offset, size) of each allocated section of an ELF file (readelf -SW)."""
    out = subprocess.run(["readelf", "-SW", binary], check=True, capture_output=True, text=True).stdout
    result = []
    for line in out.splitlines():
        fields = line.replace("[ ", "[").split()
        if len(fields) >= 8 and fields[0].startswith("[") and fields[0] != "[Nr]" and fields[2] != "NOBITS":
            size = int(fields[5], 16)
            if int(fields[3], 16) != 0 and size:  # allocated (has an address)
                result.append((fields[1], int(fields[4], 16), size))
    return result


def resident_by_section(pid: int, binary: str) -> dict[str, int]:
    """kB of the binary's pages mapped into PID, per section (/proc/PID/pagemap's present bit)."""
    real = os.path.realpath(binary)
    page = os.sysconf("SC_PAGE_SIZE")
    resident: set[int] = set()  # file page numbers
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        for line in maps:
            f = line.split(maxsplit=5)
            if len(f) < 6 or f[5].strip() != real:
                continue
            start, end = (int(x, 16) for x in f[0].split("-"))
            offset = int(f[2], 16)
            pagemap.seek(start // page * 8)
            raw = pagemap.read((end - start) // page * 8)
            for i in range(len(raw) // 8):
                if raw[i * 8 + 7] & 0x80:  # bit 63: present
                    resident.add(offset // page + i)
    out: dict[str, int] = {}
    for name, off, size in sections(binary):
        first, last = off // page, (off + size - 1) // page
        n = sum(1 for p in range(first, last + 1) if p in resident)
        if n:
            out[name] = n * page // 1024
    return out


def page_out_text(pid: int, binary: str) -> int:
    """process_madvise(MADV_PAGEOUT) on PID's read-only mappings of BINARY (code, read-only data).

    What an agent that dropped its start-up pages would keep: the pages it touches again fault
    back in. PAGEOUT reclaims, it never discards: clean file pages are dropped, the private
    (relocated) pages of a RELRO mapping would need swap and stay. Needs CAP_SYS_NICE and ptrace
    access to PID (root). Returns the bytes advised.
    """
    import ctypes

    class IoVec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

    real = os.path.realpath(binary)
    ranges = []
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            f = line.split(maxsplit=5)
            if len(f) == 6 and f[5].strip() == real and f[1][1] == "-":
                start, end = (int(x, 16) for x in f[0].split("-"))
                ranges.append((start, end - start))
    iov = (IoVec * len(ranges))(*[IoVec(start, length) for start, length in ranges])
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        done = libc.syscall(440, pidfd, iov, len(ranges), 21, 0)  # SYS_process_madvise, MADV_PAGEOUT
    finally:
        os.close(pidfd)
    if done < 0:
        raise OSError(ctypes.get_errno(), "process_madvise(MADV_PAGEOUT)")
    return int(done)


def report(label: str, phase: str, pid: int, extra: str = "", binary: str = "") -> dict[str, int]:
    s = status(pid)
    print(f"footprint label={label} phase={phase} vmrss_kb={s['VmRSS']} rss_anon_kb={s['RssAnon']} "
          f"rss_file_kb={s['RssFile']} rss_shmem_kb={s['RssShmem']} threads={s['Threads']} "
          f"cpu_ticks={s['cpu_ticks']}{extra}", flush=True)
    by_map = sorted(file_rss_by_mapping(pid).items(), key=lambda kv: -kv[1])
    print("  file-backed: " + ", ".join(f"{p}={kb}" for p, kb in by_map[:8]), flush=True)
    if binary:
        by_section = sorted(resident_by_section(pid, binary).items(), key=lambda kv: -kv[1])
        print("  binary's resident kB by section: " + ", ".join(f"{n}={kb}" for n, kb in by_section[:10]), flush=True)
    return s


class Announcements:
    """The controller topic's endpoint: counts what the agent sends."""

    def __init__(self) -> None:
        self.full = 0
        self.heartbeats = 0
        self.seen = threading.Event()

    def agent_announce(self, ctxt: Any, **kwargs: Any) -> None:
        self.full += 1
        self.seen.set()

    def agent_heartbeat(self, ctxt: Any, **kwargs: Any) -> None:
        self.heartbeats += 1
        self.seen.set()


def start_broker(tmp: Path) -> str:
    subprocess.run([str(ROOT / "scripts" / "rabbitmq-private.sh"), "start", str(tmp / "broker")], check=True,
                   stdout=subprocess.DEVNULL)
    env = {}
    for line in (tmp / "broker" / "broker.env").read_text().splitlines():
        key, _, value = line.partition("=")
        env[key] = shlex.split(value)[0] if value else ""
    return env["AOS_TEST_AMQP_URL"]


def wait_ready(proc: subprocess.Popen[str], timeout: float) -> None:
    assert proc.stdout is not None
    found = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("READY"):
                found.set()

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(timeout):
        raise SystemExit(f"agent not READY within {timeout} s (exit status {proc.poll()})")


def burst(transport: Any, host: str, total: int, lvs: int, concurrency: int) -> tuple[dict[str, int], float]:
    target = oslo_messaging.Target(topic="aos-agent", server=host, version="1.0")
    client = oslo_messaging.get_rpc_client(transport, target, timeout=60)
    names = [f"volume-{uuid.uuid4()}" for _ in range(min(lvs, total))]
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def call(method: str, **kw: Any) -> None:
        try:
            client.call({}, method, **kw)
            key = method
        except oslo_messaging.RemoteError as e:
            key = f"{method}:{e.exc_type}"
        with lock:
            counts[key] = counts.get(key, 0) + 1

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda n: call("create_lv", vg=VG, name=n, size_bytes=4 << 20), names))
        rest = total - len(names)
        kinds = [("list_lvs", {"vg": VG}), ("health", {}), ("lv_info", {"vg": VG, "name": names[0]})]
        list(pool.map(lambda i: call(kinds[i % 3][0], **kinds[i % 3][1]), range(rest)))
    return counts, time.monotonic() - t0


def main() -> int:
    warnings.simplefilter("ignore")  # eventlet's and oslo's deprecation notices
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agent", default=str(ROOT / ".build-static" / "release" / "aos-agent"))
    ap.add_argument("--url")
    ap.add_argument("--idle", type=float, default=30)
    ap.add_argument("--burst", type=int, default=500)
    ap.add_argument("--lvs", type=int, default=300)
    ap.add_argument("--after", type=float, default=30)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--announce-interval", type=float, default=10)
    ap.add_argument("--label", default="")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="an agent option (repeatable), e.g. agent.release_startup_pages=false")
    ap.add_argument("--page-out-text", action="store_true",
                    help="after the idle report, page out the agent's code (MADV_PAGEOUT), idle again and report")
    a = ap.parse_args()
    label = a.label or Path(a.agent).name

    tmp = Path(tempfile.mkdtemp(prefix="aos-footprint."))
    url = a.url or start_broker(tmp)
    try:
        return run(a, label, tmp, url)
    finally:
        if not a.url:
            subprocess.run([str(ROOT / "scripts" / "rabbitmq-private.sh"), "stop", str(tmp / "broker")],
                           stdout=subprocess.DEVNULL, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def run(a: argparse.Namespace, label: str, tmp: Path, url: str) -> int:
    host = f"footprint-{uuid.uuid4().hex[:8]}"
    oslo_url = "rabbit://" + url.split("://", 1)[1]  # oslo.messaging's driver name
    transport = oslo_messaging.get_rpc_transport(make_oslo_conf(), url=oslo_url)
    counter = Announcements()
    server = oslo_messaging.get_rpc_server(
        transport, oslo_messaging.Target(topic="aos-controller", server="footprint"), [counter], executor="threading")
    server.start()
    args = [a.agent, "--host-id", "1",
            "--set", f"DEFAULT.transport_url={url}", "--set", f"DEFAULT.host={host}",
            "--set", "agent.lvm_backend=simulated", "--set", f"agent.simulated_state_file={tmp / 'cluster.json'}",
            "--set", f"agent.volume_groups={VG}", "--set", f"agent.state_dir={tmp / 'state'}",
            "--set", f"agent.announce_interval={a.announce_interval:g}", "--set", "auth.enforce=false"]
    for option in a.set:
        args += ["--set", option]
    # auth.enforce = false: oslo.messaging sets no AMQP user_id, so the burst would be refused
    # (the refusals are logged, not enforced; as in Tests/interop).
    # Fault-around maps only pages already in the page cache: read the whole binary first, so a
    # run does not depend on what earlier runs (or --page-out-text, which evicts) left cached.
    with open(a.agent, "rb") as binary:
        while binary.read(1 << 20):
            pass
    with open(tmp / "agent.stderr", "w") as err:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True, cwd=tmp)
    try:
        wait_ready(proc, 60)
        if not counter.seen.wait(60):
            raise SystemExit("the agent did not announce within 60 s")
        print(f"footprint label={label} agent={a.agent} pid={proc.pid} "
              f"binary_bytes={os.path.getsize(a.agent)}", flush=True)
        s0 = status(proc.pid)
        time.sleep(a.idle)  # the agent idles; nothing waits on it
        ticks = status(proc.pid)["cpu_ticks"] - s0["cpu_ticks"]
        idle = report(label, "idle", proc.pid, f" idle_s={a.idle:g} idle_cpu_ticks={ticks} "
                      f"announcements={counter.full} heartbeats={counter.heartbeats}", a.agent)
        released = [x for x in (tmp / "agent.stderr").read_text(errors="replace").splitlines()
                    if "released the start-up pages" in x]
        print("  agent: " + (released[0].split(": ", 1)[-1] if released else "no start-up pages released"), flush=True)
        if a.page_out_text:
            advised = page_out_text(proc.pid, a.agent)
            s1 = status(proc.pid)
            time.sleep(a.idle)
            ticks = status(proc.pid)["cpu_ticks"] - s1["cpu_ticks"]
            idle = report(label, "idle-paged-out", proc.pid, f" paged_out_kb={advised // 1024} idle_s={a.idle:g} "
                          f"idle_cpu_ticks={ticks}", a.agent)
        counts, took = burst(transport, host, a.burst, a.lvs, a.concurrency)
        calls = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
        report(label, "burst", proc.pid, f" burst_s={took:.2f} {calls}")
        time.sleep(a.after)
        after = report(label, "after", proc.pid, f" after_s={a.after:g}", a.agent)
        print(f"footprint label={label} idle_rss_kb={idle['VmRSS']} after_rss_kb={after['VmRSS']} "
              f"after/idle={after['VmRSS'] / idle['VmRSS']:.2f} idle_cpu_ticks={ticks}", flush=True)
        return 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        server.stop()
        server.wait()
        transport.cleanup()


if __name__ == "__main__":
    sys.exit(main())
