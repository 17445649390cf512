"""The driver's side of the aos-controller RPC API (docs/rpc-api.md), over oslo.messaging.

One RPC client per driver, on its own transport (`agent_transport_url`), calling topic
`agent_controller_topic` in exchange `agent_control_exchange` with API version 1.0. The
controller's failures arrive as `oslo_messaging.RemoteError` whose `exc_type` is the stable
code in CamelCase (`LockedByOtherHost`) and whose `value` is the controller's message; they
are turned into the exceptions of `cinder_sharedlvm_driver.exception`.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import oslo_messaging
from oslo_config import cfg
from oslo_log import log as logging

from cinder_sharedlvm_driver import exception as sl_exc
from cinder_sharedlvm_driver import signing

LOG = logging.getLogger(__name__)

API_VERSION = "1.0"

# What an operator should look at, by error class. The controller's message says what
# happened and where; this says what to do about it.
HINTS = {
    sl_exc.VolumeLockedByOtherHost:
        "If no instance on that host still uses the volume, release it there with "
        "'aosctl volume deactivate {lv} --host HOST'; see 'aosctl volume show {lv}'.",
    sl_exc.AgentUnavailable:
        "Check the aos-agent service on that host ('systemctl status aos-agent', "
        "'journalctl -u aos-agent') and 'aosctl agents'.",
    sl_exc.BackendTimeout:
        "The agent did not finish in time; check its log on that host and the shared "
        "storage ('sanlock client status', multipath -ll).",
    sl_exc.LockspaceUnavailable:
        "The volume group's sanlock lockspace is not running on that host: see "
        "'aosctl locks --host HOST' and the lockspace recovery steps in docs/cinder.md.",
    sl_exc.InsufficientSpace:
        "The volume group is full: 'aosctl pool stats'; free space or grow the VG.",
    sl_exc.VolumeBusy:
        "Deactivate it on the hosts named above (after checking no instance uses it) "
        "and retry.",
    sl_exc.VolumeGroupUnknown:
        "Set volume_group to a VG listed in the agents' [agent] volume_groups "
        "('aosctl agents').",
    sl_exc.NotAuthorized:
        "Set agent_signing_key_file in this backend's section of cinder.conf and put its "
        "public key in [auth] driver_public_keys of the controller's aos.conf "
        "(docs/security.md).",
    sl_exc.RefreshFailed:
        "Retry the extend (it is idempotent) once the named hosts are reachable.",
}


def to_rabbit_url(url: str) -> str:
    """oslo.messaging (18.x) only loads the rabbit driver: amqp:// means AMQP 0-9-1 there."""
    if url.startswith("amqp://"):
        return "rabbit://" + url[len("amqp://"):]
    return url


def mask_url(url: str | None) -> str:
    """The URL without its passwords, for messages and logs."""
    if not url:
        return "(Cinder's transport_url)"
    return re.sub(r"(://|,)([^:@/,]*):[^@/,]*@", r"\1\2:***@", url)


def _request_context() -> dict[str, Any]:
    """The current Cinder request's ids, so controller and agent logs can be correlated."""
    try:
        from oslo_context import context as oslo_context
        ctx = oslo_context.get_current()
    except Exception:  # pragma: no cover - oslo.context is always there with cinder
        ctx = None
    out: dict[str, Any] = {}
    if ctx is not None:
        for key in ("request_id", "global_request_id", "project_id", "user_id"):
            value = getattr(ctx, key, None)
            if value:
                out[key] = value
    return out


# Context key (Sources/OsloRPC/RPCDeadline.swift): the wall-clock time by which the controller
# must take a request, or it does not run it.
START_BY_KEY = "aos_start_by"
# Context key (same file): the wall-clock time at which this caller stops waiting. The message
# TTL oslo sets covers only the broker's queue; with this the controller also does not start a
# request that waited in its own backlog past it, and gives its agent calls no longer than it.
DEADLINE_KEY = "aos_deadline"


class ControllerClient:
    """Calls aos-controller; every failure becomes a `SharedLVMError` subclass."""

    def __init__(self, conf: cfg.ConfigOpts, url: str | None, *, topic: str, exchange: str,
                 response_timeout: int, query_timeout: int, vg: str,
                 signing_key_file: str | None = None,
                 call_monitor_timeout: int = 60) -> None:
        self._conf = conf
        self._signer = signing.RequestSigner.from_file(signing_key_file) if signing_key_file else None
        self._url = url or None
        self.topic = topic
        self.exchange = exchange
        self.response_timeout = int(response_timeout)
        self.query_timeout = int(min(query_timeout, response_timeout))
        # oslo's call monitor: the controller sends heartbeats while a call runs; none for
        # this long and the call fails, whatever its timeout. 0 (or less): no monitor.
        monitor = int(call_monitor_timeout or 0)
        self.call_monitor_timeout: int | None = monitor if monitor > 0 else None
        self.vg = vg
        self._lock = threading.Lock()
        self._transport = None
        self._client = None

    @property
    def url_for_humans(self) -> str:
        return mask_url(self._url)

    def _rpc_client(self):
        with self._lock:
            if self._client is None:
                url = to_rabbit_url(self._url) if self._url else None
                try:
                    self._transport = oslo_messaging.get_rpc_transport(self._conf, url=url)
                except (oslo_messaging.InvalidTransportURL, oslo_messaging.DriverLoadFailure) as e:
                    raise sl_exc.ControllerUnreachable(
                        data=f"agent_transport_url {mask_url(self._url)} is not usable: {e}. "
                             f"Use amqp://USER:PASS@HOST:5672/VHOST (or rabbit://…).") from e
                target = oslo_messaging.Target(exchange=self.exchange, topic=self.topic,
                                               version=API_VERSION)
                # retry: a broker outage must fail the call, not block it forever.
                self._client = oslo_messaging.get_rpc_client(
                    self._transport, target, timeout=self.response_timeout, retry=3,
                    call_monitor_timeout=self.call_monitor_timeout)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._transport is not None:
                try:
                    self._transport.cleanup()
                except Exception:  # pragma: no cover - best effort at shutdown
                    LOG.debug("transport cleanup failed", exc_info=True)
            self._transport = None
            self._client = None

    # ---- the call -----------------------------------------------------------------------

    def call(self, method: str, *, what: str, query: bool = False, **kwargs: Any) -> Any:
        """Calls `method`; `what` names the operation in error messages ("attach volume X")."""
        timeout = self.query_timeout if query else self.response_timeout
        client = self._rpc_client().prepare(timeout=timeout)
        args = {k: v for k, v in kwargs.items() if v is not None}
        LOG.debug("aos-controller call %s %s (timeout %ss)", method, args, timeout)
        ctxt = _request_context()
        if self._signer is not None:
            ctxt[signing.CONTEXT_KEY] = self._signer.sign(self.topic, method, args, version=API_VERSION)
        ctxt[DEADLINE_KEY] = time.time() + timeout
        if self.call_monitor_timeout is not None and self.call_monitor_timeout >= 3:
            # The monitor gives up on a request no server took in time (no heartbeat came): the
            # controller must not run it later (restarted, it takes what is left in its queue).
            # Its first heartbeat comes 1 s after it takes a request: 2 s of margin.
            ctxt[START_BY_KEY] = time.time() + self.call_monitor_timeout - 2
        started = time.monotonic()
        try:
            result = client.call(ctxt, method, **args)
        except oslo_messaging.RemoteError as e:
            raise self.translate(e, what=what, lv=args.get("name")) from None
        except oslo_messaging.MessagingTimeout:
            waited = time.monotonic() - started
            if self.call_monitor_timeout is not None and waited < timeout:
                raise sl_exc.ControllerUnreachable(
                    data=f"Cannot {what}: aos-controller stopped answering {method}: no heartbeat "
                         f"for {self.call_monitor_timeout} s (agent_call_monitor_timeout; gave up "
                         f"after {waited:.0f} s of {timeout} s). The request was sent: it may have "
                         f"run or still be running on an agent (a controller that took it passed it "
                         f"on); look at the volume before retrying. Check that aos-controller runs "
                         f"('systemctl status aos-controller') on topic '{self.topic}' at "
                         f"{self.url_for_humans}.") from None
            raise sl_exc.ControllerUnreachable(
                data=f"Cannot {what}: aos-controller did not answer {method} within {timeout} s "
                     f"(topic '{self.topic}', exchange '{self.exchange}' at "
                     f"{self.url_for_humans}). Check that aos-controller runs "
                     f"('systemctl status aos-controller') and uses the same broker and topic "
                     f"as agent_transport_url / agent_controller_topic.") from None
        except oslo_messaging.MessagingException as e:
            raise sl_exc.ControllerUnreachable(
                data=f"Cannot {what}: the message broker at {self.url_for_humans} failed: "
                     f"{e}. Check agent_transport_url and the broker.") from None
        LOG.debug("aos-controller %s -> %s", method, result)
        return result

    @staticmethod
    def translate(error: oslo_messaging.RemoteError, *, what: str,
                  lv: str | None = None) -> sl_exc.SharedLVMError:
        code = sl_exc.code_from_class_name(error.exc_type or "")
        cls = sl_exc.CODE_TO_EXCEPTION.get(code, sl_exc.SharedLVMError)
        text = (error.value or "").strip() or (error.exc_type or "unknown error")
        message = f"Cannot {what}: {text} [{code}]"
        hint = HINTS.get(cls)
        if hint:
            message += ". " + hint.format(lv=lv or "LV")
        return cls(data=message, aos_code=code)

    # ---- API (docs/rpc-api.md) -----------------------------------------------------------

    def create_volume(self, name: str, size_gb: int, *, what: str) -> dict:
        return self.call("create_volume", what=what, vg=self.vg, name=name, size_gb=int(size_gb))

    def extend_volume(self, name: str, size_gb: int, *, what: str) -> dict:
        return self.call("extend_volume", what=what, vg=self.vg, name=name, size_gb=int(size_gb))

    def delete_volume(self, name: str, *, what: str, volume_clear: str | None = None,
                      volume_clear_size_mb: int | None = None) -> dict:
        return self.call("delete_volume", what=what, vg=self.vg, name=name,
                         volume_clear=volume_clear, volume_clear_size_mb=volume_clear_size_mb)

    def activate(self, name: str, host: str, mode: str, *, what: str) -> dict:
        return self.call("activate_volume", what=what, vg=self.vg, name=name, host=host, mode=mode)

    def deactivate(self, name: str, host: str, *, what: str) -> dict:
        return self.call("deactivate_volume", what=what, vg=self.vg, name=name, host=host)

    def get_volume(self, name: str, *, what: str) -> dict:
        return self.call("get_volume", what=what, query=True, vg=self.vg, name=name)

    def pool_stats(self, *, what: str) -> dict:
        return self.call("pool_stats", what=what, query=True, vg=self.vg)

    def list_agents(self, *, what: str) -> dict:
        return self.call("list_agents", what=what, query=True)

    def copy_volume(self, source: str, target: str, *, what: str, size_gb: int | None = None,
                    verify: bool | None = None) -> dict:
        """Starts the copy as a job on an agent that can read `source`; returns at once."""
        return self.call("copy_volume", what=what, vg=self.vg, source=source, target=target,
                         size_gb=int(size_gb) if size_gb is not None else None, verify=verify)

    def job_info(self, job_id: str, *, what: str, host: str | None = None) -> dict:
        return self.call("job_info", what=what, query=True, id=job_id, host=host)

    def cancel_job(self, job_id: str, *, what: str, host: str | None = None) -> dict:
        return self.call("cancel_job", what=what, id=job_id, host=host)

    def list_volumes(self, *, what: str) -> dict:
        return self.call("list_volumes", what=what, query=True, vg=self.vg)

    def rename_volume(self, name: str, new_name: str, *, what: str) -> dict:
        return self.call("rename_volume", what=what, vg=self.vg, name=name, new_name=new_name)
