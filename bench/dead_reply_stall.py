#!/usr/bin/env python3
"""Dead reply queues must not stall a server: sends COUNT calls naming reply queues that do
not exist, then one valid call, and prints how long the valid call took to be answered.
Starts nothing itself.

  .venv/bin/python bench/dead_reply_stall.py AMQP_URL QUEUE [--count 100] [--method echo]
"""
import argparse
import json
import sys
import time
import uuid

import kombu


def call_body(method, reply_q):
    inner = {"method": method, "args": {"x": 1}, "_msg_id": uuid.uuid4().hex, "_reply_q": reply_q,
             "_timeout": None, "_unique_id": uuid.uuid4().hex}
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(inner)})


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
        q = kombu.Queue(reply_q, exchange=kombu.Exchange("", type="direct"), routing_key=reply_q,
                        durable=False, auto_delete=True, channel=ch)
        q.declare()
        producer = kombu.Producer(ch)
        for _ in range(a.count):
            producer.publish(call_body(a.method, f"reply_missing_{uuid.uuid4().hex}"), exchange="",
                             routing_key=a.queue, content_type="application/json", serializer=None)

        def on_reply(body, message):
            got.setdefault("t", time.monotonic())
            message.ack()

        with kombu.Consumer(ch, queues=[q], callbacks=[on_reply], accept=["json", "application/json"]):
            t0 = time.monotonic()
            producer.publish(call_body(a.method, reply_q), exchange="", routing_key=a.queue,
                             content_type="application/json", serializer=None)
            while "t" not in got and time.monotonic() - t0 < a.timeout:
                try:
                    conn.drain_events(timeout=1)
                except (TimeoutError, OSError):
                    pass
    if "t" in got:
        print(f"valid call answered {1000 * (got['t'] - t0):.1f} ms after {a.count} calls to missing reply queues")
        return 0
    print(f"valid call not answered within {a.timeout} s")
    return 1


if __name__ == "__main__":
    sys.exit(main())
