"""E2B failures translated into one exception type with a condition reason."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import ParamSpec, TypeVar

import httpx
from e2b import exceptions as e2b_exc

from .. import metrics

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
        case e2b_exc.RateLimitException() if "concurrent" in text.lower():
            return BackendError("CapacityExhausted", text, retry_after=retry_after(exc))
        case e2b_exc.RateLimitException():
            return BackendError(
                "RateLimited",
                f"E2B is rate limiting requests: {text}",
                retry_after=retry_after(exc),
            )
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


def retry_after(exc: BaseException) -> float | None:
    """The Retry-After (seconds) of the answer behind an SDK exception, if it had one.

    The SDK builds its exception from the response and drops the headers; the frame that
    raised it still holds the response (``res``), so it is read from there."""
    tb = exc.__traceback__
    while tb is not None:
        for value in tb.tb_frame.f_locals.values():
            headers = getattr(value, "headers", None)
            if getattr(value, "status_code", None) == 429 and headers is not None:
                return _seconds(headers.get("retry-after") or headers.get("Retry-After"))
        tb = tb.tb_next
    return None


def _seconds(raw: str | None) -> float | None:
    try:
        return max(float(raw), 0.0) if raw else None
    except ValueError:  # an HTTP date: rare, and the pacer's own slowdown covers it
        return None


def outcome(exc: BaseException) -> str:
    """What a failed call got from E2B, for metrics: the HTTP status it answered, else
    timeout, unreachable, cancelled or error."""
    for e in (exc, exc.__cause__):
        match e:
            case asyncio.CancelledError():
                return "cancelled"
            case e2b_exc.AuthenticationException():
                return "401"
            case e2b_exc.TimeoutException() | httpx.TimeoutException() | TimeoutError():
                return "timeout"
            case httpx.TransportError():
                return "unreachable"
            case e2b_exc.SandboxException() | e2b_exc.ServiceBusyException() if e.status_code:
                return str(e.status_code)
    return "error"


@contextlib.asynccontextmanager
async def deadline(seconds: float) -> AsyncIterator[None]:
    """E2B answers within ``seconds``, or the call fails with BackendTimeout. The SDK's own
    ``request_timeout`` is no such bound: its HTTP transport allows the read and the write
    timeouts in sum, twice the request timeout, to a request nobody answers."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError as exc:
        raise BackendError("BackendTimeout", f"E2B did not answer in {seconds:g}s") from exc


@contextlib.contextmanager
def calling(operation: str) -> Iterator[None]:
    """Around one E2B call: re-raise anything it raises as a ``BackendError``, and count
    the call, its outcome and its duration (``metrics.e2b_call``) under ``operation``."""
    started, code = time.monotonic(), "2xx"
    try:
        yield
    except BackendError as exc:
        code = outcome(exc)
        raise
    except Exception as exc:
        code = outcome(exc)
        raise translate(exc) from exc
    except BaseException as exc:
        code = outcome(exc)
        raise
    finally:
        metrics.e2b_call(operation, code, time.monotonic() - started)


def translated(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Decorator: the adapter method is one E2B call (``calling``), counted under its
    qualified name (``SandboxBackend._connect`` counts as ``SandboxBackend.connect``)."""
    operation = fn.__qualname__.replace("._", ".")

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with calling(operation):
            return await fn(*args, **kwargs)

    return wrapper
