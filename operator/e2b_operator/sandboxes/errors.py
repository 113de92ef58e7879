"""E2B failures translated into one exception type with a condition reason."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import httpx
from e2b import exceptions as e2b_exc

P = ParamSpec("P")
T = TypeVar("T")


class BackendError(Exception):
    """A failed E2B call. ``reason`` is a CamelCase condition reason; ``transient`` says
    whether retrying the same call later can succeed without a change by the user."""

    def __init__(
        self, reason: str, message: str, *, transient: bool = True, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.transient = transient
        self.retry_after = retry_after


class SandboxGone(BackendError):
    """The sandbox no longer exists (killed behind our back, or expired)."""

    def __init__(self, sandbox_id: str) -> None:
        super().__init__("SandboxNotFound", f"sandbox {sandbox_id} no longer exists")


def translate(exc: BaseException) -> BackendError:
    """Classify an exception raised by the e2b SDK or its HTTP transport."""
    if isinstance(exc, BackendError):
        return exc
    text = str(exc) or type(exc).__name__
    match exc:
        case e2b_exc.AuthenticationException():
            return BackendError(
                "Unauthorized",
                "E2B rejected the API key; check the operator's E2B API key Secret",
                transient=False,
            )
        case e2b_exc.RateLimitException():
            return BackendError("RateLimited", f"E2B is rate limiting requests: {text}")
        case e2b_exc.ServiceBusyException():
            return BackendError("BackendUnavailable", f"E2B is busy: {text}")
        case e2b_exc.TimeoutException() | httpx.TimeoutException():
            return BackendError("BackendTimeout", f"E2B did not answer in time: {text}")
        case httpx.TransportError():
            return BackendError("BackendUnreachable", f"cannot reach E2B: {text}")
        case e2b_exc.InvalidArgumentException():
            return BackendError(
                "InvalidRequest", f"E2B rejected the request: {text}", transient=False
            )
        case e2b_exc.BuildException() | e2b_exc.FileUploadException():
            return BackendError("BuildFailed", text, transient=False)
        case e2b_exc.NotFoundException():
            return BackendError("NotFound", text, transient=False)
        case e2b_exc.SandboxException() if (getattr(exc, "status_code", 0) or 0) >= 500:
            return BackendError("BackendUnavailable", f"E2B failed: {text}")
        case _:
            return BackendError("BackendError", f"E2B call failed: {text}")


def translated(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Decorator: re-raise anything an adapter method raises as a ``BackendError``."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except BackendError:
            raise
        except Exception as exc:
            raise translate(exc) from exc

    return wrapper
