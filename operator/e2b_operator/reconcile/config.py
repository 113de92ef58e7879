"""Per-instance configuration: the deployment's config, merged with the instance's own.

Like the seed's scale_template, each instance gets its own configuration: an explicit
``instanceConfigs`` list (item i for instance i), or one list-valued key of ``config``
dealt round-robin across instances by ``shardBy``.
"""

from __future__ import annotations

from typing import Any

from ..api import E2BDeploymentSpec
from .hashing import stable_hash
from .slots import shard_step, slot_indices


def instance_config(spec: E2BDeploymentSpec, index: int) -> dict[str, Any]:
    """The JSON configuration instance ``index`` receives."""
    config = dict(spec.config or {})
    if spec.instance_configs is not None and index < len(spec.instance_configs):
        config.update(spec.instance_configs[index])
    if spec.shard_by and isinstance(config.get(spec.shard_by), list):
        config[spec.shard_by] = config[spec.shard_by][index :: shard_step(spec)]
    config["instanceIndex"] = index
    return config


def slot_hashes(
    spec: E2BDeploymentSpec, template_hash: str | None, envs_spec: list[Any]
) -> dict[int, str]:
    """Per wanted slot: what a current sandbox is made from (the template build, the env
    spec without secret values, the slot's config and its restart request, if any)."""
    restarts = {r.index: r.restarted_at.isoformat() for r in spec.instance_restarts}
    out = {}
    for i in slot_indices(spec):
        parts: tuple[Any, ...] = (template_hash, envs_spec, instance_config(spec, i))
        if i in restarts:
            parts += (restarts[i],)
        out[i] = stable_hash(*parts, length=10)
    return out


def config_problem(spec: E2BDeploymentSpec) -> str | None:
    """Why the per-instance configuration cannot be made, or None."""
    if spec.shard_by and not isinstance((spec.config or {}).get(spec.shard_by), list):
        return (
            f"spec.shardBy names {spec.shard_by!r}, but spec.config.{spec.shard_by} is not a "
            "list; make it a list or remove shardBy"
        )
    return None
