#!/usr/bin/env python3
"""Dead reply queues must not stall a server: sends COUNT calls naming reply queues that do
not exist, then one valid call, and prints how long the valid call took to be answered.
Starts nothing itself.

  .venv/bin/python bench/dead_reply_stall.py AMQP_URL QUEUE [--count 100] [--method echo]
"""
import argparse
import sys
import time
import uuid

import kombu

from rawrpc import call_body, drain_until, reply_queue


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("queue")
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--method", default="echo")
    ap.add_argument("--timeout", type=float, default=90.0)
    a = ap.parse_args()
    reply_q = f"reply_{uuid.uuid4().hex}"
    got = {}
    with kombu.Connection(a.url) as conn:
        ch = conn.channel()
        q = reply_queue(ch, reply_q)
        producer = kombu.Producer(ch)
        for _ in range(a.count):
            producer.publish(call_body(a.method, {"x": 1}, f"reply_missing_{uuid.uuid4().hex}"), exchange="",
                             routing_key=a.queue, content_type="application/json", serializer=None)

        def on_reply(body, message):
            got.setdefault("t", time.monotonic())
            message.ack()

        with kombu.Consumer(ch, queues=[q], callbacks=[on_reply], accept=["json", "application/json"]):
            t0 = time.monotonic()
            producer.publish(call_body(a.method, {"x": 1}, reply_q), exchange="", routing_key=a.queue,
                             content_type="application/json", serializer=None)
            drain_until(conn, lambda: "t" in got, a.timeout)
    if "t" in got:
        print(f"valid call answered {1000 * (got['t'] - t0):.1f} ms after {a.count} calls to missing reply queues")
        return 0
    print(f"valid call not answered within {a.timeout} s")
    return 1


if __name__ == "__main__":
    sys.exit(main())
