"""oslo.messaging calls by hand over kombu, for the bench scripts: the 2.0 envelope, a reply
queue of one's own, and a bounded wait for deliveries."""
import json
import time
import uuid
from collections.abc import Callable

import kombu


def call_body(method, args, reply_q):
    """An oslo 2.0 envelope of a call of `method` with `args` whose reply goes to `reply_q`."""
    inner = {"method": method, "args": args, "_msg_id": uuid.uuid4().hex, "_reply_q": reply_q,
             "_timeout": None, "_unique_id": uuid.uuid4().hex}
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(inner)})


def reply_queue(channel, name):
    """Declares the (non-durable, auto-deleted) queue `name`, reached through the default exchange."""
    q = kombu.Queue(name, exchange=kombu.Exchange("", type="direct"), routing_key=name,
                    durable=False, auto_delete=True, channel=channel)
    q.declare()
    return q


def drain_until(conn, done: Callable[[], bool], timeout: float) -> None:
    """Handles deliveries on `conn` until done() holds or `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        try:
            conn.drain_events(timeout=1)
        except (TimeoutError, OSError):
            pass
