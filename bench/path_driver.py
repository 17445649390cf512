"""The Cinder driver's path for `aos-bench path` (docs/performance.md, "The whole path").

Started by aos-bench (argv, no shell) under the cinder venv with PYTHONPATH=deploy/cinder:

    python bench/path_driver.py --topic T --vg VG --name LV --host H --key-file F \
        --calls N --warmup W --methods get_volume,activate_volume,list_agents

with the driver's transport URL in AOS_BENCH_DRIVER_URL (not in argv, where ps shows it).
It calls the controller through the driver's own `ControllerClient` (oslo.messaging, every
request signed with the Ed25519 key in F, the call monitor on as in cinder.conf's default),
so each call costs what one of Cinder's costs. Prints one line per method:

    PATH method=M median_ms=X p99_ms=Y calls=N
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

from oslo_config import cfg

from cinder_sharedlvm_driver import client as sl_client

DEFAULT_CALL_MONITOR_TIMEOUT = 60  # agent_call_monitor_timeout's default (opts.py)


def timed(fn: Callable[[], Any], calls: int, warmup: int) -> tuple[float, float]:
    """Median and nearest-rank p99 of `calls` sequential calls, in ms."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(calls):
        t = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t) / 1e6)
    samples.sort()
    return samples[len(samples) // 2], samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--topic", required=True)
    ap.add_argument("--exchange", default="openstack")
    ap.add_argument("--vg", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--key-file", required=True)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--methods", default="get_volume,activate_volume,list_agents")
    args = ap.parse_args()
    url = os.environ["AOS_BENCH_DRIVER_URL"]

    cfg.CONF([], project="aos-bench")
    client = sl_client.ControllerClient(
        cfg.CONF, url, topic=args.topic, exchange=args.exchange, response_timeout=60,
        query_timeout=30, vg=args.vg, signing_key_file=args.key_file,
        call_monitor_timeout=DEFAULT_CALL_MONITOR_TIMEOUT)

    def activate() -> None:
        r = client.activate(args.name, args.host, "exclusive", what="bench activate")
        if r.get("changed") is not False:
            raise SystemExit(f"activate_volume changed something: {r}")

    calls: dict[str, Callable[[], Any]] = {
        "get_volume": lambda: client.get_volume(args.name, what="bench get"),
        "activate_volume": activate,
        "list_agents": lambda: client.list_agents(what="bench list"),
    }
    try:
        for method in args.methods.split(","):
            median, p99 = timed(calls[method], args.calls, args.warmup)
            print(f"PATH method={method} median_ms={median:.4f} p99_ms={p99:.4f} calls={args.calls}",
                  flush=True)
    finally:
        client.close()


if __name__ == "__main__":
    main()
