"""Kill sandboxes whose E2BDeployment no longer exists (deleted while the operator was down)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from kubernetes_asyncio.client.exceptions import ApiException

from ..api import DEPLOYMENTS_PLURAL
from ..reconcile.observed import META_DEPLOYMENT_UID
from ..sandboxes.backend import SandboxBackend
from ..sandboxes.errors import BackendError
from .context import Services
from .lister import SandboxLister

log = logging.getLogger(__name__)


async def sweep(services: Services) -> int:
    """One sweep of every E2B account being listed; returns how many orphans were killed.
    An account that fails is skipped this round; the others are still swept."""
    live = await services.kube.list_uids(DEPLOYMENTS_PLURAL)
    if services.accounts is None:
        assert services.lister is not None
        scopes = [(services.lister, services.backend)]
    else:
        scopes = [(a.lister, a.backend) for a in services.accounts.listing()]
    killed = 0
    for lister, backend in scopes:
        try:
            killed += await _sweep(services, live, lister, backend)
        except BackendError as exc:
            log.warning("orphan sweep of one E2B account failed, retrying next round: %s", exc)
    return killed


async def _sweep(
    services: Services, live: set[str], lister: SandboxLister, backend: SandboxBackend
) -> int:
    now = datetime.now(UTC)
    grace = services.settings.orphan_grace_seconds
    killed = 0
    for s in await lister.everything():
        uid = s.metadata.get(META_DEPLOYMENT_UID)
        young = s.started_at is not None and (now - s.started_at).total_seconds() < grace
        if uid and uid not in live and not young:
            await backend.kill(s.sandbox_id)
            log.info("killed orphaned sandbox %s of deleted deployment %s", s.sandbox_id, uid)
            killed += 1
    return killed


async def sweep_forever(services: Services) -> None:
    """Sweep every orphan_sweep_seconds until cancelled; failures wait for the next round."""
    while True:
        await asyncio.sleep(services.settings.orphan_sweep_seconds)
        try:
            await sweep(services)
        except (BackendError, ApiException) as exc:
            log.warning("orphan sweep failed, retrying next round: %s", exc)
        except Exception:  # the apiserver restarting (connection errors, timeouts), a bug:
            # never end the sweep, which nothing would restart
            log.exception("orphan sweep failed unexpectedly, retrying next round")
