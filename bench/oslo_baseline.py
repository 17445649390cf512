"""Reference numbers for docs/performance.md: what the same ping costs with Python oslo.messaging.

    .venv/bin/python bench/oslo_baseline.py --url rabbit://guest:guest@127.0.0.1:PORT/ [--server swift|python]

--server python: an oslo.messaging RPC server in this process (threading executor);
--server swift : an already running `aos-rpc-peer serve --topic aos-bench-swift`.
Prints sequential median/p99 over --calls calls and throughput with 16 threads.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid

import oslo_messaging as om
from oslo_config import cfg


class Endpoint:
    def ping(self, ctxt):
        return "pong"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--server", choices=["python", "swift"], default="python")
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--per-thread", type=int, default=250)
    a = ap.parse_args()
    url = a.url.replace("amqp://", "rabbit://", 1)
    transport = om.get_rpc_transport(cfg.CONF, url=url)
    topic = "aos-bench-swift" if a.server == "swift" else f"aos-bench-py-{uuid.uuid4().hex[:6]}"
    server = None
    if a.server == "python":
        server = om.get_rpc_server(transport, om.Target(topic=topic, server="py"), [Endpoint()])
        server.start()
    client = om.get_rpc_client(transport, om.Target(topic=topic), timeout=30)
    for _ in range(200):
        client.call({}, "ping")
    samples = []
    for _ in range(a.calls):
        t = time.perf_counter()
        client.call({}, "ping")
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    print(f"python client -> {a.server} server, sequential: median {statistics.median(samples):.3f} ms, "
          f"p99 {samples[int(len(samples) * 0.99)]:.3f} ms")

    def worker():
        for _ in range(a.per_thread):
            client.call({}, "ping")

    threads = [threading.Thread(target=worker) for _ in range(a.threads)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    n = a.threads * a.per_thread
    print(f"python client -> {a.server} server, {a.threads} threads: {n / (time.perf_counter() - t0):.0f} calls/s")
    if server:
        server.stop()
        server.wait()
    transport.cleanup()


if __name__ == "__main__":
    main()
