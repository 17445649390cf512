"""Ed25519 request signatures for calls to aos-controller (docs/security.md).

oslo.messaging cannot set AMQP's user_id, so the controller cannot tell from the broker who
published a request. The driver therefore signs each request with its private key, and the
controller accepts it as the Cinder driver when the public key is in its
`[auth] driver_public_keys`. The signature travels in the request context under `aos_auth`
and covers the routing key (the controller's topic), method, version, time, a nonce and the
arguments; see `signed_bytes`. Depends only on `cryptography`, so tools and tests can import
this file on its own.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

CONTEXT_KEY = "aos_auth"
VERSION = "aos-rpc-sig-v1"


def signed_bytes(target: str, method: str, namespace: str | None, version: str | None,
                 ts_ms: int, nonce: str, args: dict[str, Any]) -> bytes:
    """The canonical form both sides compute: json.dumps with sorted keys, ASCII only."""
    doc = [VERSION, target, method, namespace, version, ts_ms, nonce, args]
    return json.dumps(doc, sort_keys=True, ensure_ascii=True).encode("ascii")


class RequestSigner:
    """Signs requests with one Ed25519 private key (raw 32 bytes, base64, in a file)."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key

    @classmethod
    def from_file(cls, path: str) -> RequestSigner:
        mode = os.stat(path).st_mode
        if mode & 0o077:
            raise ValueError(f"{path} is readable by others (mode {oct(mode & 0o777)}): chmod 600 it")
        with open(path, encoding="ascii") as f:
            raw = base64.b64decode(f.read().strip(), validate=True)
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    @classmethod
    def generate(cls) -> RequestSigner:
        return cls(Ed25519PrivateKey.generate())

    @property
    def public_key(self) -> str:
        raw = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return base64.b64encode(raw).decode("ascii")

    @property
    def private_key(self) -> str:
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat
        raw = self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return base64.b64encode(raw).decode("ascii")

    def sign(self, target: str, method: str, args: dict[str, Any], *, namespace: str | None = None,
             version: str | None = None, ts_ms: int | None = None,
             nonce: str | None = None) -> dict[str, Any]:
        """The `aos_auth` context entry for one request."""
        ts_ms = int(time.time() * 1000) if ts_ms is None else ts_ms
        nonce = secrets.token_hex(16) if nonce is None else nonce
        sig = self._key.sign(signed_bytes(target, method, namespace, version, ts_ms, nonce, args))
        return {"key": self.public_key, "ts": ts_ms, "nonce": nonce,
                "sig": base64.b64encode(sig).decode("ascii")}
