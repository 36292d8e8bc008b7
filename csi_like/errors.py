"""The outcomes of a driver call that are not success, as a small class tree.

A caller (the provisioning controller, the kubelet) decides what to do from the type alone,
never from a message: `NotMine` means "ask another driver / ignore", `TemporaryError` means
"retry after `delay` seconds", `PermanentError` (and its subclasses) means "retrying the same
request will not help: record an event and wait for the user to change something". Messages
name the offending parameter so the event a user reads says what to fix.
"""

from __future__ import annotations


class DriverError(Exception):
    """Base of every error a csi_like driver raises."""


class NotMine(DriverError):
    """The request (provisioner name, volume id) belongs to another driver; ignore it."""


class TemporaryError(DriverError):
    """Something outside the request failed (server down, timeout); retry after `delay` s."""

    def __init__(self, message: str, delay: float = 10.0) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(DriverError):
    """The request cannot succeed as it stands; retrying it unchanged will fail again."""


class InvalidArgument(PermanentError):
    """A parameter (class parameter, annotation, pattern, size ...) is malformed or unknown;
    `parameter` names it."""

    def __init__(self, parameter: str, value: object, reason: str) -> None:
        super().__init__(f"invalid {parameter} {value!r}: {reason}")
        self.parameter = parameter
        self.value = value
        self.reason = reason


class VolumeConflict(PermanentError):
    """A volume (or directory) of this name exists but was made for another request, or by
    someone else; CSI's ALREADY_EXISTS with incompatible parameters."""


class VolumeNotFound(PermanentError):
    """The volume id names no existing volume (for calls where absence is not success)."""


class OutOfCapacity(PermanentError):
    """The requested size is larger than the space that can back it."""

    def __init__(self, message: str, requested: int, available: int) -> None:
        super().__init__(message)
        self.requested = requested
        self.available = available


class NodeUnsuitable(PermanentError):
    """The node the volume was asked on cannot host it (not configured, out of space); the
    controller may clear the selected node so the scheduler picks another (sig-storage's
    ProvisioningReschedule)."""

    def __init__(self, message: str, node: str) -> None:
        super().__init__(message)
        self.node = node
