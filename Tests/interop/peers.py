"""Helpers for driving the Swift test peer (aos-rpc-peer) and Python oslo peers."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

READY = '{"event": "READY"}'


class SwiftClientPeer:
    """`aos-rpc-peer client`: one JSON request per stdin line, one JSON line back.

    Connection events ({"event": ...}) arrive on the same stdout; they are kept apart
    so a test can wait for them (e.g. a reconnect) instead of sleeping.
    """

    def __init__(self, binary: Path, url: str, stderr_path: Path, *extra: str) -> None:
        self._stderr = open(stderr_path, "wb")
        self.stderr_path = stderr_path
        self.proc = subprocess.Popen(
            [str(binary), "client", "--url", url, *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            text=True, bufsize=1, start_new_session=True,
        )
        self.results: queue.Queue[dict[str, Any]] = queue.Queue()
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_event("READY", timeout=30)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            obj = json.loads(line)
            (self.events if "event" in obj else self.results).put(obj)

    def wait_event(self, name: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {name!r} event within {timeout}s; stderr:\n{self.stderr_tail()}")
            try:
                ev = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            if ev["event"] == name:
                return ev

    def request(self, wait: float = 60, **req: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        try:
            return self.results.get(timeout=wait)
        except queue.Empty:
            raise AssertionError(f"no reply to {req} within {wait}s; stderr:\n{self.stderr_tail()}") from None

    def stderr_tail(self) -> str:
        self._stderr.flush()
        return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-40:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)
        self._stderr.close()


class FreezableProxy:
    """A TCP proxy on 127.0.0.1 that can stop forwarding without closing sockets:
    to the client it looks like a broker (or network) that went silent."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.closed = False
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while not self.closed:
            self.flowing.wait()
            try:
                data = src.recv(65536)
            except OSError:
                break
            if not data:
                break
            # Held data is dropped while frozen, like packets into a black hole.
            if not self.flowing.is_set():
                continue
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass

    def freeze(self) -> None:
        self.flowing.clear()

    def thaw(self) -> None:
        self.flowing.set()

    def close(self) -> None:
        self.closed = True
        self.flowing.set()
        self.listener.close()
        for s in self.sockets:
            try:
                s.close()
            except OSError:
                pass
