"""A network namespace that reaches this host through a veth pair, for partition tests (issue 15).

Only the pair's own link-local addresses are used (169.254.X.Y/30, X and Y picked at random among
the ones no interface has): nothing else on the host is touched. The broker listens on
127.0.0.1, so a relay on the host's end of the pair forwards to it; `cut()` takes the host's end
of the link down (the namespace's end keeps its address and route: its packets go nowhere, as
with a pulled cable further away), `heal()` brings it back."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import threading
import uuid

IP = shutil.which("ip") or "/usr/sbin/ip"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([IP, *args], capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def unavailable() -> str | None:
    """Why a namespace cannot be made here (None when it can): tried, not guessed."""
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    probe = f"aos-probe-{uuid.uuid4().hex[:6]}"
    r = _ip("netns", "add", probe, check=False)
    if r.returncode != 0:
        return f"`ip netns add` is not permitted here: {r.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


class Relay:
    """Forwards TCP connections accepted on (address, any port) to 127.0.0.1:target_port."""

    def __init__(self, address: str, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((address, 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.closed = False
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                if self.closed:
                    return
                continue
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.closed = True
        for s in [self.listener, *self.sockets]:
            try:
                s.close()
            except OSError:
                pass


class VethNamespace:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.name = f"aos-chaos-{tag}"
        self.host_if, self.ns_if = f"aos{tag}h", f"aos{tag}n"
        used = _ip("-o", "-4", "addr").stdout
        rng = random.Random()
        while True:
            base = f"169.254.{rng.randrange(1, 255)}."
            last = 4 * rng.randrange(0, 64)
            if base not in used:
                break
        self.host_ip, self.ns_ip = f"{base}{last + 1}", f"{base}{last + 2}"
        self.made = False

    def __enter__(self) -> VethNamespace:
        _ip("netns", "add", self.name)
        self.made = True
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        _ip("link", "set", self.ns_if, "netns", self.name)
        _ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        _ip("-n", self.name, "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if)
        _ip("-n", self.name, "link", "set", self.ns_if, "up")
        _ip("-n", self.name, "link", "set", "lo", "up")
        return self

    def __exit__(self, *exc: object) -> None:
        _ip("link", "del", self.host_if, check=False)  # takes its peer along
        if self.made:
            _ip("netns", "del", self.name, check=False)

    def argv(self, *command: str) -> list[str]:
        """`command` run inside the namespace (ip netns exec execs it: the pid is the command's)."""
        return ["netns", "exec", self.name, *command]

    def cut(self) -> None:
        _ip("link", "set", self.host_if, "down")

    def heal(self) -> None:
        _ip("link", "set", self.host_if, "up")
