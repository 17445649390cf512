#!/usr/bin/env python3
"""Flood memory: RSS of a running RPC server before, right after and 60 s after a flood.

Starts nothing itself. Reads VmRSS of PID, publishes COUNT call-shaped requests of SIZE
bytes (oslo 2.0 envelope, a reply queue this script declares and consumes) to QUEUE through
the default exchange, waits until every reply came back (or 120 s), reads VmRSS, waits
WAIT seconds more, reads VmRSS again and prints the three numbers (kB) and the reply count.

  .venv/bin/python bench/flood_rss.py PID AMQP_URL QUEUE [--count 300] [--size 1048576] [--wait 60]
"""
import argparse
import json
import sys
import time
import uuid

import kombu

from rawrpc import call_body, drain_until, reply_queue


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field}")


def rss_kb(pid):
    return status_kb(pid, "VmRSS")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pid", type=int)
    ap.add_argument("url")
    ap.add_argument("queue")
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--size", type=int, default=1 << 20)
    ap.add_argument("--wait", type=float, default=60.0)
    ap.add_argument("--method", default="echo")
    a = ap.parse_args()

    before = rss_kb(a.pid)
    reply_q = f"reply_{uuid.uuid4().hex}"
    replies = {"n": 0, "errors": {}}

    def on_reply(body, message):
        replies["n"] += 1
        try:
            inner = json.loads(json.loads(body)["oslo.message"]) if isinstance(body, str) else \
                json.loads(body["oslo.message"])
            f = inner.get("failure")
            if f:
                cls = json.loads(f).get("class", "?")
                replies["errors"][cls] = replies["errors"].get(cls, 0) + 1
        except Exception:  # noqa: BLE001 - counting only
            pass
        message.ack()

    with kombu.Connection(a.url) as conn:
        ch = conn.channel()
        q = reply_queue(ch, reply_q)
        producer = kombu.Producer(ch)
        blob = "x" * a.size
        with kombu.Consumer(ch, queues=[q], callbacks=[on_reply], accept=["json", "application/json"]):
            for _ in range(a.count):
                producer.publish(call_body(a.method, {"blob": blob}, reply_q), exchange="", routing_key=a.queue,
                                 content_type="application/json", content_encoding="utf-8", serializer=None)
            drain_until(conn, lambda: replies["n"] >= a.count, 120)
    after = rss_kb(a.pid)
    time.sleep(a.wait)
    later = rss_kb(a.pid)
    # VmHWM: the process's peak RSS since it started (earlier runs against the same PID count).
    print(f"rss_before_kb={before} rss_after_flood_kb={after} rss_after_{int(a.wait)}s_kb={later} "
          f"peak_rss_kb={status_kb(a.pid, 'VmHWM')} replies={replies['n']}/{a.count} failures={replies['errors']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
