"""Per-instance configuration: the deployment's config, merged with the instance's own.

Like the seed's scale_template, each instance gets its own configuration: an explicit
``instanceConfigs`` list (item i for instance i), or one list-valued key of ``config``
dealt round-robin across instances by ``shardBy``.
"""

from __future__ import annotations

from typing import Any

from ..api import E2BDeploymentSpec


def instance_config(spec: E2BDeploymentSpec, index: int) -> dict[str, Any]:
    """The JSON configuration instance ``index`` receives."""
    config = dict(spec.config or {})
    if spec.instance_configs is not None and index < len(spec.instance_configs):
        config.update(spec.instance_configs[index])
    if spec.shard_by and isinstance(config.get(spec.shard_by), list):
        step = max(spec.replicas, 1)
        config[spec.shard_by] = config[spec.shard_by][index::step]
    config["instanceIndex"] = index
    return config


def config_problem(spec: E2BDeploymentSpec) -> str | None:
    """Why the per-instance configuration cannot be made, or None."""
    if spec.shard_by and not isinstance((spec.config or {}).get(spec.shard_by), list):
        return (
            f"spec.shardBy names {spec.shard_by!r}, but spec.config.{spec.shard_by} is not a "
            "list; make it a list or remove shardBy"
        )
    return None
