"""TLS to the broker through librabbitmq 0.11 (issue 2): CA file, hostname verification."""

from __future__ import annotations

import os

import pytest

from peers import READY, SwiftClientPeer

pytestmark = pytest.mark.timeout(120)


def test_tls_call_with_ca_file_and_hostname_verification(spawn, amqp_url, unique_topic, swift_bin, tls, tmp_path):
    port, ca = tls
    spawn("aos-rpc-peer", "serve", "--url", amqp_url, "--topic", unique_topic, ready=READY)
    url = f"amqps://guest:guest@localhost:{port}/?ssl_ca_file={ca}"
    client = SwiftClientPeer(swift_bin / "aos-rpc-peer", url, tmp_path / "tls-client.stderr")
    try:
        client.wait_event("connected", timeout=30)
        r = client.request(op="call", topic=unique_topic, method="echo", args={"over": "tls"}, timeout=10)
        assert r["ok"] and r["result"] == {"over": "tls"}, r
    finally:
        client.stop()


def test_tls_by_ip_address_fails_verification_clearly(swift_bin, tls, tmp_path):
    # The certificate names "localhost"; librabbitmq 0.11 cannot match IP SANs, and
    # must refuse rather than talk to an unverified peer.
    port, ca = tls
    url = f"rabbit://guest:guest@127.0.0.1:{port}/?ssl=1&ssl_ca_file={ca}"
    client = SwiftClientPeer(swift_bin / "aos-rpc-peer", url, tmp_path / "tls-ip.stderr")
    try:
        ev = client.wait_event("disconnected", timeout=30)
        assert "hostname verification failed" in ev["reason"], ev
        r = client.request(op="call", topic="x", method="ping", timeout=2)
        assert not r["ok"] and r["error"] in ("transport", "timeout"), r
    finally:
        client.stop()


def test_tls_with_wrong_ca_is_refused(swift_bin, tls, tmp_path):
    port, _ = tls
    other_ca = tmp_path / "other-ca.pem"
    os.system(f"openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=other -keyout {tmp_path}/k.pem "
              f"-out {other_ca} >/dev/null 2>&1")
    assert other_ca.exists()
    client = SwiftClientPeer(swift_bin / "aos-rpc-peer", f"amqps://guest:guest@localhost:{port}/?ssl_ca_file={other_ca}",
                             tmp_path / "tls-ca.stderr")
    try:
        ev = client.wait_event("disconnected", timeout=30)
        assert "localhost" in ev["reason"] and ("SSL" in ev["reason"] or "certificate" in ev["reason"]), ev
    finally:
        client.stop()


def test_tls_without_ca_file_is_a_configuration_error(swift_bin, tmp_path):
    import subprocess
    r = subprocess.run([str(swift_bin / "aos-rpc-peer"), "client", "--url", "amqps://guest:secret@localhost:1/"],
                       input="", capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "CA file" in r.stderr, r.stderr
    assert "secret" not in r.stderr + r.stdout
