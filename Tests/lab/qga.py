#!/usr/bin/env python3
"""Run commands in a lab guest through qemu-guest-agent (virtio-serial, a unix socket on the host).

As a module:
    g = QGA("/path/vm1.qga")
    r = g.run(["lvs", "vg"], timeout=60)      # -> Result(exit, stdout, stderr, seconds)
    r = g.sh("lvs vg | wc -l")                 # through /bin/sh -c
    g.ping(timeout=120)                        # wait until the agent answers

As a command (exit status = the guest command's):
    python3 Tests/lab/qga.py SOCKET [--timeout S] -- CMD ARGS…
    python3 Tests/lab/qga.py SOCKET --sh 'lvs; sanlock client status'
    python3 Tests/lab/qga.py SOCKET --ping

Protocol: one JSON command per line; guest-sync-delimited (the answer is preceded by a 0xFF
byte) flushes whatever an earlier, interrupted exchange left in the channel; guest-exec with
capture-output starts a process, guest-exec-status polls it (base64 stdout/stderr, real exit
code). qemu serves one client per socket at a time: a QGA object holds one connection.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class QGAError(Exception):
    pass


@dataclass
class Result:
    argv: list[str]
    exit: int | None          # None when killed by a signal (see signal)
    stdout: str
    stderr: str
    seconds: float
    signal: int | None = None

    @property
    def ok(self) -> bool:
        return self.exit == 0

    def __str__(self) -> str:
        return (f"{' '.join(self.argv)} -> exit {self.exit}"
                + (f" signal {self.signal}" if self.signal else "")
                + f" in {self.seconds:.2f}s\n--- stdout ---\n{self.stdout}--- stderr ---\n{self.stderr}")

    def check(self) -> Result:
        if self.exit != 0:
            raise QGAError(f"guest command failed: {self}")
        return self


class QGA:
    def __init__(self, path: str, env: dict[str, str] | None = None) -> None:
        self.path = path
        self.env = env or {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                           "LC_ALL": "C", "HOME": "/root"}
        self._sock: socket.socket | None = None
        self._buf = b""
        self._lock = threading.RLock()

    # ---- connection ------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                try:
                    self._sock.close()
                except OSError:
                    pass
            self._sock = None
            self._buf = b""

    def _connect(self) -> socket.socket:
        if self._sock is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(self.path)
            self._sock = s
            self._buf = b""
        return self._sock

    def _send(self, obj: dict[str, Any]) -> None:
        self._connect().sendall(json.dumps(obj).encode() + b"\n")

    def _read_line(self, deadline: float) -> bytes:
        sock = self._connect()
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("guest agent did not answer in time")
            sock.settimeout(min(remaining, 5))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise ConnectionError("guest agent socket closed")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def _sync(self, deadline: float) -> None:
        """guest-sync-delimited: skip everything up to the 0xFF marker and our id's answer."""
        token = random.randrange(1, 2**31)
        self._send({"execute": "guest-sync-delimited", "arguments": {"id": token}})
        while True:
            line = self._read_line(deadline)
            i = line.rfind(b"\xff")
            if i >= 0:
                line = line[i + 1:]
            if not line.strip():
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("return") == token:
                return

    def command(self, execute: str, arguments: dict[str, Any] | None = None,
                timeout: float = 30) -> Any:
        """One QMP-style command; returns its "return" value or raises QGAError."""
        deadline = time.monotonic() + timeout
        with self._lock:
            try:
                self._sync(deadline)
                msg: dict[str, Any] = {"execute": execute}
                if arguments is not None:
                    msg["arguments"] = arguments
                self._send(msg)
                while True:
                    reply = json.loads(self._read_line(deadline))
                    if "error" in reply:
                        raise QGAError(f"{execute}: {reply['error']}")
                    if "return" in reply:
                        return reply["return"]
            except (OSError, ValueError, TimeoutError):
                self.close()
                raise

    def ping(self, timeout: float = 180) -> float:
        """Waits until the guest agent answers (boot); returns the seconds waited."""
        start = time.monotonic()
        deadline = start + timeout
        last: BaseException | None = None
        while time.monotonic() < deadline:
            try:
                self.command("guest-ping", timeout=min(2, max(0.5, deadline - time.monotonic())))
                return time.monotonic() - start
            except (OSError, ValueError, TimeoutError, QGAError) as e:
                last = e
                self.close()
                time.sleep(0.5)
        raise TimeoutError(f"guest agent at {self.path} not answering after {timeout}s: {last!r}")

    # ---- exec ------------------------------------------------------------------------
    def spawn(self, argv: Sequence[str], input_data: bytes | None = None) -> int:
        args: dict[str, Any] = {"path": argv[0], "arg": list(argv[1:]), "capture-output": True,
                                "env": [f"{k}={v}" for k, v in self.env.items()]}
        if input_data is not None:
            args["input-data"] = base64.b64encode(input_data).decode()
        return int(self.command("guest-exec", args)["pid"])

    def wait(self, pid: int, argv: Sequence[str], timeout: float, started: float) -> Result:
        deadline = started + timeout
        delay = 0.02
        while True:
            st = self.command("guest-exec-status", {"pid": pid}, timeout=30)
            if st.get("exited"):
                out = base64.b64decode(st.get("out-data", "")).decode(errors="replace")
                err = base64.b64decode(st.get("err-data", "")).decode(errors="replace")
                return Result(list(argv), st.get("exitcode"), out, err, time.monotonic() - started,
                              st.get("signal"))
            if time.monotonic() > deadline:
                # Not killed: qemu-ga cannot; report what we know.
                raise TimeoutError(f"{' '.join(argv)} still running in the guest after {timeout}s")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def run(self, argv: Sequence[str], timeout: float = 120, check: bool = False,
            input_data: bytes | None = None) -> Result:
        started = time.monotonic()
        pid = self.spawn(argv, input_data)
        result = self.wait(pid, argv, timeout, started)
        return result.check() if check else result

    def sh(self, script: str, timeout: float = 120, check: bool = False) -> Result:
        return self.run(["/bin/sh", "-c", script], timeout=timeout, check=check)


def main() -> int:
    p = argparse.ArgumentParser(description="run a command in a lab guest through qemu-guest-agent")
    p.add_argument("socket")
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--sh", metavar="SCRIPT", help="run SCRIPT with /bin/sh -c")
    p.add_argument("--ping", action="store_true", help="wait until the guest agent answers")
    p.add_argument("argv", nargs="*")
    a = p.parse_args()
    g = QGA(a.socket)
    if a.ping:
        print(f"answered after {g.ping(a.timeout):.1f}s")
        return 0
    if a.sh is not None:
        r = g.sh(a.sh, timeout=a.timeout)
    elif a.argv:
        r = g.run(a.argv, timeout=a.timeout)
    else:
        p.error("give a command after --, or --sh SCRIPT")
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    sys.stdout.flush()
    if r.exit is None:
        return 128 + (r.signal or 0)
    return r.exit


if __name__ == "__main__":
    sys.exit(main())
