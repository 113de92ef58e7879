"""Whether an object's credentials fit its template's: pure checks, no I/O.

An E2BTemplate is built in the E2B team of its own spec.credentials, so a deployment or
execution must name the same credentials (the same Secret and keys, or none), and can use
the build only once the template's status says it is usable with the account those
credentials resolve to now (after a key of another team, the template is rebuilt first).
"""

from __future__ import annotations

from dataclasses import replace

from ..api import Credentials
from .deployment import TemplateView
from .observed import Problem


def describe(credentials: Credentials | None) -> str:
    """How a message names credentials (never their values)."""
    if credentials is None:
        return "the operator's own E2B credentials"
    return f"Secret {credentials.secret_ref.name!r}"


def mismatch(
    kind: str, own: Credentials | None, target: str, theirs: Credentials | None
) -> Problem | None:
    """A Stalled problem when an object's credentials are not those of the template or
    deployment (``target``, e.g. "E2BTemplate app") it uses."""
    if own == theirs:
        return None
    return Problem(
        "CredentialsMismatch",
        f"spec.credentials uses {describe(own)}, but {target} uses {describe(theirs)}: its "
        f"templates and sandboxes live in that E2B team; give this {kind} the same "
        f"spec.credentials as {target}",
        stalled=True,
    )


def usable(view: TemplateView | None, account_id: str) -> TemplateView | None:
    """The template as this account sees it: not ready while its build is known to be
    usable only with another account (the template loop is rebuilding or re-checking it).
    Unknown on either side ("" or None) is taken as usable."""
    if view is None or not view.ready or not account_id or not view.credentials_hash:
        return view
    if view.credentials_hash == account_id:
        return view
    return replace(
        view,
        ready=False,
        message="the E2B credentials changed: waiting for the template to be checked or "
        "rebuilt in their E2B team",
    )
