"""Cinder exceptions for the controller's stable error codes.

Every class is a `VolumeBackendAPIException` (what Cinder expects from a backend: the volume
goes to `error` / the create is rescheduled), and where Cinder has a more precise class the
exception is also an instance of it (`VolumeIsBusy`, `VolumeNotFound`, `InvalidInput`,
`VolumeGroupNotFound`), so the volume manager's own handling applies. The message is the whole
operator text: what was attempted, what the controller said, and what to do.
"""

from __future__ import annotations

from cinder import exception


class SharedLVMError(exception.VolumeBackendAPIException):
    """Base of the driver's errors. `code` is the controller's stable code."""

    message = "%(data)s"
    aos_code = "internal"

    def __init__(self, message=None, **kwargs):
        self.aos_code = kwargs.pop("aos_code", type(self).aos_code)
        self.details = kwargs.pop("details", {})
        # Fill the keyword arguments of a second (Cinder) base class's message template, so
        # that CinderException's formatting never falls back to its generic text.
        kwargs.setdefault("data", message or "")
        kwargs.setdefault("volume_id", kwargs["data"])
        kwargs.setdefault("volume_name", kwargs["data"])
        kwargs.setdefault("reason", kwargs["data"])
        kwargs.setdefault("vg_name", kwargs["data"])
        super().__init__(**kwargs)


class ControllerUnreachable(SharedLVMError):
    """No answer from aos-controller (not running, wrong URL/topic, broker down)."""
    aos_code = "unreachable"


class VolumeLockedByOtherHost(SharedLVMError):
    """Another host holds the LV lock (exclusive, or shared when exclusive was asked)."""
    aos_code = "locked_by_other_host"


class AgentUnavailable(SharedLVMError):
    """The agent of the host that must act is down, or none serves the VG."""
    aos_code = "agent_unavailable"


class BackendTimeout(SharedLVMError):
    """The agent did not finish within agent_response_timeout (or the deadline passed)."""
    aos_code = "timed_out"


class LockspaceUnavailable(SharedLVMError):
    """The VG's sanlock lockspace is not started, lost, or its lease storage fails."""
    aos_code = "lockspace_not_started"


class InsufficientSpace(SharedLVMError):
    """Not enough free extents in the shared VG."""
    aos_code = "insufficient_space"


class VolumeSizeConflict(SharedLVMError):
    """An LV of that name exists with another size, or a shrink was asked."""
    aos_code = "size_conflict"


class RefreshFailed(SharedLVMError):
    """Extended, but a host that has the LV active could not refresh it."""
    aos_code = "refresh_failed"


class VolumeBusy(SharedLVMError, exception.VolumeIsBusy):
    """The LV is active (or open) somewhere: it cannot be deleted or deactivated now."""
    aos_code = "busy"


class LVNotFound(SharedLVMError, exception.VolumeNotFound):
    """The volume's LV does not exist in the VG."""
    aos_code = "not_found"


class VolumeGroupUnknown(SharedLVMError, exception.VolumeGroupNotFound):
    """No agent serves the configured volume_group."""
    aos_code = "unknown_vg"


class InvalidRequest(SharedLVMError, exception.InvalidInput):
    """The controller refused the request's arguments (a driver or configuration bug)."""
    aos_code = "invalid_argument"


class NotAuthorized(SharedLVMError, exception.NotAuthorized):
    """The controller refused the driver: its signing key or broker user has no role there."""
    aos_code = "not_authorized"


# Controller error code -> exception class. exc_type on the wire is the code in CamelCase.
CODE_TO_EXCEPTION = {
    "not_authorized": NotAuthorized,
    "locked_by_other_host": VolumeLockedByOtherHost,
    "incompatible_lock_mode": VolumeLockedByOtherHost,
    "agent_unavailable": AgentUnavailable,
    "not_ready": AgentUnavailable,
    "messaging_error": AgentUnavailable,
    "timed_out": BackendTimeout,
    "expired": BackendTimeout,
    "lockspace_not_started": LockspaceUnavailable,
    "lockspace_lost": LockspaceUnavailable,
    "lock_storage_failed": LockspaceUnavailable,
    "insufficient_space": InsufficientSpace,
    "size_conflict": VolumeSizeConflict,
    "already_exists": VolumeSizeConflict,
    "refresh_failed": RefreshFailed,
    "busy": VolumeBusy,
    "not_found": LVNotFound,
    "not_active": SharedLVMError,
    "unknown_vg": VolumeGroupUnknown,
    "invalid_argument": InvalidRequest,
    # cinder's volume_name_template and the agents' [agent] lv_name_pattern disagree.
    "lv_not_managed": InvalidRequest,
    "unknown_method": InvalidRequest,
    "agent_restarted": AgentUnavailable,
    "unreachable": ControllerUnreachable,
    # Codes the controller does not send the driver (recovery, restore reports, aosctl's
    # own), mapped so that the table is total: the contract test checks it against the
    # Swift enum WireErrorCode.
    "internal": SharedLVMError,
    "recovery_refused": SharedLVMError,
    "recovery_failed": SharedLVMError,
    "deactivate_pending": SharedLVMError,
    "domain_not_found": SharedLVMError,
    "remote_error": SharedLVMError,
    "other": SharedLVMError,
}


def code_from_class_name(name: str) -> str:
    """`LockedByOtherHost` -> `locked_by_other_host` (the controller's convention)."""
    out = []
    for i, ch in enumerate(name or ""):
        if ch.isupper() and i > 0:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)
