"""The one error hierarchy of Corral.

Every error a user can see is a CorralError: its message names the value at fault and,
where one exists, says what to do. `exit_code` is what the CLI exits with and `http_status`
what the API answers with, so both ends map errors the same way.
"""
from __future__ import annotations


class CorralError(Exception):
    """Base of every error Corral reports to a user."""

    exit_code = 125
    http_status = 500

    def __init__(self, message: str, *, hint: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        # The path of the bad input (`mounts[0].target`), "" for the body as a whole, None
        # when the error is not about one input.
        self.field = field

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def to_dict(self) -> dict:
        return {"error": type(self).__name__, "message": self.message, "hint": self.hint, "field": self.field}


class InvalidArgument(CorralError):
    """A value given by the user is malformed: a size like "64x", a bad name, a bad path."""

    http_status = 400


class NotFound(CorralError):
    """A named object (container, image, network, policy) does not exist."""

    http_status = 404


class Conflict(CorralError):
    """The request clashes with the current state: name in use, image in use, container stopped."""

    http_status = 409


class KernelError(CorralError):
    """A kernel interface (cgroup file, mount, BPF, netlink) refused; wraps the OSError."""

    http_status = 500


class LaunchError(CorralError):
    """The launcher could not start the container process (missing command, bad rootfs)."""

    http_status = 400


class DaemonUnavailable(CorralError):
    """The CLI could not reach the daemon's socket."""

    http_status = 503


class MethodNotAllowed(CorralError):
    """The API path exists but not with this HTTP method; `allowed` goes in the Allow header."""

    http_status = 405

    def __init__(self, message: str, *, allowed: tuple[str, ...] = (), **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.allowed = allowed


class RequestTimeout(CorralError):
    """A client did not send its whole request in time (408)."""

    http_status = 408


class TooLarge(CorralError):
    """A request body, target or header is larger than the API accepts (413, 414, 431)."""

    http_status = 413

    def __init__(self, message: str, *, status: int = 413, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.http_status = status


class RegistryError(CorralError):
    """A registry refused or failed a request; the message carries the registry's own code and text."""

    http_status = 502


class Unauthorized(RegistryError):
    """A registry wants credentials we do not have, or refused the ones we sent."""

    http_status = 401


class PolicyError(CorralError):
    """A policy file is invalid; the message is `file:line:col: path: message`."""

    http_status = 400


ERRORS_BY_NAME = {cls.__name__: cls for cls in (
    CorralError, InvalidArgument, NotFound, Conflict, KernelError, LaunchError,
    DaemonUnavailable, MethodNotAllowed, RequestTimeout, TooLarge, PolicyError, RegistryError, Unauthorized,
)}


def from_dict(data: dict) -> CorralError:
    """Rebuild an error the API sent, so the CLI raises the same class the daemon did."""
    cls = ERRORS_BY_NAME.get(data.get("error", ""), CorralError)
    error = cls(data.get("message", "unknown error"), hint=data.get("hint"))
    error.field = data.get("field")
    return error
