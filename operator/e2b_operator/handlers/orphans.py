"""Kill sandboxes whose E2BDeployment no longer exists (deleted while the operator was down)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from kubernetes_asyncio.client.exceptions import ApiException

from ..api import DEPLOYMENTS_PLURAL
from ..reconcile.observed import META_DEPLOYMENT_UID
from ..sandboxes.errors import BackendError
from .context import Services

log = logging.getLogger(__name__)


async def sweep(services: Services) -> int:
    """One sweep; returns how many orphans were killed."""
    live = await services.kube.list_uids(DEPLOYMENTS_PLURAL)
    now = datetime.now(UTC)
    grace = services.settings.orphan_grace_seconds
    killed = 0
    assert services.lister is not None
    for s in await services.lister.everything():
        uid = s.metadata.get(META_DEPLOYMENT_UID)
        young = s.started_at is not None and (now - s.started_at).total_seconds() < grace
        if uid and uid not in live and not young:
            await services.backend.kill(s.sandbox_id)
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
