"""TemplateDeployer: the seed's deployer over E2BDeployment and E2BExecution objects.

Async like the seed; `get_deployment_status` and `get_deployment_stats` are synchronous, as the
seed calls them. Nothing here talks to E2B: a deployment is an E2BDeployment the operator
runs, an execution an E2BExecution it runs, so kubectl and GitOps see every call.

Streaming: while a script runs the operator writes its output to status (at most every
0.1 s), and `stream_execution` watches the object, so it yields each line as it is printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from kubernetes_asyncio import client

from e2b_operator import api
from e2b_operator.api import E2BDeploymentSpec
from e2b_operator.reconcile.config import instance_config
from e2b_operator.reconcile.execution import MAIN_LOG_PHASES
from e2b_operator.reconcile.slots import slot_indices

from .cluster import (
    Conflict,
    NotFoundError,
    Objects,
    ToolkitError,
    WaitTimeout,
    connect,
    default_namespace,
    resource_name,
    run_sync,
)
from .output import OutputCursor

DEPLOYMENTS = "e2bdeployments"
EXECUTIONS = "e2bexecutions"
TEMPLATES = "e2btemplates"
FINISHED = ("Succeeded", "Failed")
MAIN_LOG_FOLLOW_SECONDS = 3600
"""Each follow of a main log is one execution this long; then the next one resumes."""
EXECUTION_TTL_SECONDS = 600
"""Executions started here are deleted this long after they finished (a loop of runs does
not pile up objects); pass ttl_seconds_after_finished to keep one longer."""
T = TypeVar("T")
Progress = Callable[[str], None]


class DeploymentFailed(ToolkitError):
    """The deployment stalled (e.g. its template failed to build) or never became ready."""


class DeploymentTimeout(DeploymentFailed, WaitTimeout):
    """The deployment did not become ready in time."""


def condition(obj: Mapping[str, Any], type_: str) -> dict[str, Any] | None:
    """The status condition of that type, if any."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return None


def ready_sandboxes(obj: Mapping[str, Any]) -> list[str]:
    """IDs of the deployment's running, healthy sandboxes, by instance index."""
    entries = (obj.get("status") or {}).get("sandboxes") or []
    ok = [s for s in entries if s.get("phase") == "Running" and s.get("healthy") is not False]
    return [s["sandboxID"] for s in sorted(ok, key=lambda s: s.get("index", 0))]


def is_ready(obj: Mapping[str, Any]) -> bool:
    """Ready condition True for the current generation, every replica ready and up to date,
    and no outdated sandbox left (like `kubectl rollout status`)."""
    ready = condition(obj, "Ready")
    status = obj.get("status") or {}
    replicas = obj["spec"].get("replicas", 1)
    return (
        ready is not None
        and ready.get("status") == "True"
        and status.get("observedGeneration", 0) >= obj["metadata"].get("generation", 0)
        and len(ready_sandboxes(obj)) >= replicas
        and status.get("updatedReadyReplicas", replicas) >= replicas
        and len(status.get("sandboxes") or []) <= replicas
    )


def deployment_info(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The seed's deployment dict for an E2BDeployment object."""
    status = obj.get("status") or {}
    ids = ready_sandboxes(obj)
    ready = condition(obj, "Ready")
    return {
        "deployment": obj["metadata"]["name"],
        "namespace": obj["metadata"]["namespace"],
        "template": obj["spec"]["templateRef"]["name"],
        "sandbox_id": ids[0] if ids else None,
        "sandbox_ids": ids,
        "status": status.get("phase") or "Pending",
        "ready": status.get("ready") or f"0/{obj['spec'].get('replicas', 1)}",
        "replicas": obj["spec"].get("replicas", 1),
        "message": (ready or {}).get("message", ""),
        "deployed_at": obj["metadata"].get("creationTimestamp"),
    }


def execution_result(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The seed's execution result dict for a finished (or running) E2BExecution."""
    status = obj.get("status") or {}
    ok = status.get("phase") == "Succeeded" and not status.get("resultTruncated")
    return {
        "status": "success" if ok else "error",
        "result": status.get("result"),
        "result_truncated": bool(status.get("resultTruncated")),
        "error": None if ok else (status.get("message") or status.get("phase") or "not finished"),
        "reason": status.get("reason"),
        "stdout": status.get("stdoutTail", ""),
        "stderr": status.get("stderrTail", ""),
        "exit_code": status.get("exitCode"),
        "duration": status.get("durationSeconds"),
        "execution": obj["metadata"]["name"],
        "sandbox_id": status.get("sandboxID"),
        "phase": status.get("phase") or "Pending",
    }


def single_list_key(config: Mapping[str, Any] | None) -> str | None:
    """The one list-valued key of config, if there is exactly one (the default shardBy)."""
    keys = [k for k, v in (config or {}).items() if isinstance(v, list)]
    return keys[0] if len(keys) == 1 else None


class TemplateDeployer:
    """Deploy templates, run their main scripts, scale, update and clean up."""

    def __init__(
        self,
        namespace: str | None = None,
        kubeconfig: str | None = None,
        context: str | None = None,
        api_client: client.ApiClient | None = None,
        poll_seconds: float = 0.5,
        ready_timeout: float = 300.0,
        progress: Progress | None = None,
        execution_ttl: int = EXECUTION_TTL_SECONDS,
    ) -> None:
        """api_client: use this client (not closed here) instead of one per call;
        progress: called with a one-line message while waiting; execution_ttl: seconds an
        execution is kept after it finished, unless a call says otherwise."""
        self.kubeconfig = kubeconfig
        self.context = context
        self.namespace = namespace or default_namespace(kubeconfig, context)
        self.api_client = api_client
        self.poll_seconds = poll_seconds
        self.ready_timeout = ready_timeout
        self.progress = progress
        self.execution_ttl = execution_ttl

    # -- deployments -------------------------------------------------------------------------

    async def deploy_template(
        self,
        template: str,
        config: Mapping[str, Any] | None = None,
        replicas: int = 1,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        wait: bool = True,
        instance_configs: list[dict[str, Any]] | None = None,
        shard_by: str | None = None,
        env_spec: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Create an E2BDeployment of the template and (by default) wait until it is Ready.
        env_spec: spec.env entries as they are (values or Secret references), after env."""
        tname = resource_name(template)
        spec: dict[str, Any] = {"templateRef": {"name": tname}, "replicas": replicas}
        if config:
            spec["config"] = dict(config)
        if env or env_spec:
            spec["env"] = [{"name": k, "value": str(v)} for k, v in (env or {}).items()]
            spec["env"] += list(env_spec or [])
        if instance_configs is not None:
            spec["instanceConfigs"] = instance_configs
        if shard_by:
            spec["shardBy"] = shard_by
        body = {
            "apiVersion": api.API_VERSION,
            "kind": "E2BDeployment",
            "metadata": {"name": name or f"{tname[:50]}-{secrets.token_hex(3)}"},
            "spec": spec,
        }
        found = api.problems("E2BDeployment", body)
        if found:
            raise api.InvalidObject("deployment", found)

        async def create(objects: Objects) -> dict[str, Any]:
            await objects.get(TEMPLATES, tname)  # NotFoundError names the missing template
            return await objects.create(DEPLOYMENTS, body)

        created = await self._call(create)
        if not wait:
            return deployment_info(created)
        return await self.wait_ready(created["metadata"]["name"])

    async def wait_ready(self, name: str, timeout: float | None = None) -> dict[str, Any]:
        """Poll the deployment until Ready; DeploymentFailed when it stalls or times out."""
        deadline = time.monotonic() + (timeout or self.ready_timeout)
        last = ""
        while True:
            obj = await self._call(lambda o: o.get(DEPLOYMENTS, name))
            info = deployment_info(obj)
            if is_ready(obj):
                return info
            stalled = condition(obj, "Stalled")
            if stalled and stalled.get("status") == "True":
                raise DeploymentFailed(f"deployment {name!r} failed: {stalled.get('message')}")
            line = f"deployment {name}: {info['status']} {info['ready']} {info['message']}".strip()
            if line != last and self.progress:
                self.progress(line)
            last = line
            if time.monotonic() > deadline:
                raise DeploymentTimeout(f"deployment {name!r} not ready in time: {line}")
            await asyncio.sleep(self.poll_seconds)

    async def scale_template(
        self,
        template: str,
        instances: int,
        config: Mapping[str, Any] | None = None,
        instance_configs: list[dict[str, Any]] | None = None,
        shard_by: str | None = None,
        name: str | None = None,
    ) -> list[dict[str, Any]]:
        """Deploy `instances` sandboxes of the template, each with its own configuration.

        Per instance: instance_configs[i] merged over config, or the items of the list
        config[shard_by] dealt round-robin; with neither, a config with exactly one list
        value is sharded by it (the seed's {"symbols": [...]} example). One dict per instance.
        """
        if instance_configs is None and shard_by is None:
            shard_by = single_list_key(config)
        info = await self.deploy_template(
            template,
            config=config,
            replicas=instances,
            name=name,
            instance_configs=instance_configs,
            shard_by=shard_by,
        )
        obj = await self._call(lambda o: o.get(DEPLOYMENTS, info["deployment"]))
        spec = E2BDeploymentSpec.from_wire(obj["spec"])
        by_index = {
            s["index"]: s["sandboxID"]
            for s in obj["status"].get("sandboxes", [])
            if s["sandboxID"] in info["sandbox_ids"]
        }
        return [
            {**info, "index": i, "sandbox_id": by_index.get(i), "config": instance_config(spec, i)}
            for i in slot_indices(spec)
        ]

    async def scale(self, deployment: str, replicas: int, wait: bool = True) -> dict[str, Any]:
        """Set a deployment's replicas (like kubectl scale) and wait until Ready."""
        obj = await self._call(lambda o: o.get(DEPLOYMENTS, deployment))
        await self._call(
            lambda o: o.patch(DEPLOYMENTS, deployment, {"spec": {"replicas": replicas}})
        )
        name = obj["metadata"]["name"]
        if wait:
            return await self.wait_ready(name)
        return deployment_info(await self._call(lambda o: o.get(DEPLOYMENTS, name)))

    async def update_template(
        self, target: str, template: str, wait: bool = True
    ) -> dict[str, Any]:
        """Move what `target` names to `template` and wait until it runs (wait=True).

        A sandbox ID names one instance: the same template re-creates that instance (the
        seed's recovery step); another template moves it into a deployment of its own (same
        config and env), the others keep running. A deployment name, or the only instance of
        a deployment, rolls the whole deployment (update_deployment). Returns the instance's
        (or deployment's) info with its new sandbox_id."""
        obj, entry = await self._locate(target)
        name, tname = obj["metadata"]["name"], resource_name(template)
        await self._call(lambda o: o.get(TEMPLATES, tname))
        same = obj["spec"]["templateRef"]["name"] == tname
        if entry is None or (not same and obj["spec"].get("replicas", 1) <= 1):
            return await self.update_deployment(name, tname, wait)
        index = entry["index"]
        if same:
            restarts = [r for r in obj["spec"].get("instanceRestarts", []) if r["index"] != index]
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            restarts.append({"index": index, "restartedAt": stamp})
            await self._patch_spec(name, {"instanceRestarts": restarts})
            if not wait:
                return await self.deployment_status(name)
            await self.wait_ready(name)
            return self._instance(await self._call(lambda o: o.get(DEPLOYMENTS, name)), index)
        spec = E2BDeploymentSpec.from_wire(obj["spec"])
        config = instance_config(spec, index)
        config.pop("instanceIndex")
        moved = await self.deploy_template(
            tname,
            config=config,
            name=f"{name[:40]}-{index}-{secrets.token_hex(2)}",
            env_spec=obj["spec"].get("env"),
            wait=wait,
        )
        await self._retire(name, index, wait)
        return moved

    async def update_deployment(
        self, deployment: str, template: str, wait: bool = True
    ) -> dict[str, Any]:
        """Roll the whole deployment to another template; the operator replaces its sandboxes
        within the rollout bounds. Waits until Ready."""
        tname = resource_name(template)
        await self._call(lambda o: o.get(TEMPLATES, tname))
        await self._patch_spec(deployment, {"templateRef": {"name": tname}})
        if wait:
            return await self.wait_ready(deployment)
        return deployment_info(await self._call(lambda o: o.get(DEPLOYMENTS, deployment)))

    async def cleanup(self, target: str, wait: bool = True) -> bool:
        """Remove what `target` names: a sandbox ID removes that instance (the deployment
        shrinks by one, the other instances keep running with their IDs; the last one deletes
        the deployment), a deployment name deletes the deployment (delete_deployment); the
        operator runs the cleanup hook and kills the sandboxes. False when nothing matches."""
        try:
            obj, entry = await self._locate(target)
        except NotFoundError:
            return False
        name = obj["metadata"]["name"]
        if entry is None or obj["spec"].get("replicas", 1) <= 1:
            return await self.delete_deployment(name)
        await self._retire(name, entry["index"], wait)
        return True

    async def delete_deployment(self, deployment: str) -> bool:
        """Delete the whole deployment; False when it does not exist."""
        try:
            await self._call(lambda o: o.delete(DEPLOYMENTS, resource_name(deployment)))
        except NotFoundError:
            return False
        return True

    def get_deployment_status(self, target: str) -> dict[str, Any]:
        """The seed's status dict: of that instance for a sandbox ID (status is its phase,
        deployed_at its start, config its configuration), of the deployment for a name."""
        return run_sync(lambda: self.deployment_status(target))

    async def deployment_status(self, target: str) -> dict[str, Any]:
        """get_deployment_status for async callers."""
        obj, entry = await self._locate(target)
        return deployment_info(obj) if entry is None else self._instance(obj, entry["index"])

    def get_deployment_stats(self) -> dict[str, Any]:
        """Totals over the namespace's deployments and executions."""

        async def stats(objects: Objects) -> dict[str, Any]:
            deployments = await objects.list(DEPLOYMENTS)
            executions = await objects.list(EXECUTIONS)
            sandboxes = [
                s for d in deployments for s in (d.get("status") or {}).get("sandboxes", [])
            ]
            by_template: dict[str, int] = {}
            for d in deployments:
                t = d["spec"]["templateRef"]["name"]
                by_template[t] = by_template.get(t, 0) + 1
            phases = [(x.get("status") or {}).get("phase") or "Pending" for x in executions]
            return {
                "namespace": self.namespace,
                "total_deployments": len(deployments),
                "ready_deployments": sum(1 for d in deployments if is_ready(d)),
                "total_sandboxes": len(sandboxes),
                "ready_sandboxes": sum(len(ready_sandboxes(d)) for d in deployments),
                "unhealthy_sandboxes": sum(1 for s in sandboxes if s.get("healthy") is False),
                "by_template": by_template,
                "executions": {
                    "total": len(executions),
                    **{p.lower(): phases.count(p) for p in ("Pending", "Running", *FINISHED)},
                },
            }

        return run_sync(lambda: self._call(stats))

    async def health_check(self, sandbox_id: str, timeout: int = 30) -> dict[str, Any]:
        """Run the template's healthCheck hook in that sandbox now (an E2BExecution with hook
        healthCheck, at most `timeout` seconds) and return status healthy or unhealthy with
        its message and output (starting, paused or terminating when it is not running). A
        deployment name gives the deployment's health instead: healthy when every replica
        is ready, per the operator's last checks."""
        obj, entry = await self._locate(sandbox_id)
        if entry is None:
            info = deployment_info(obj)
            return {
                "status": "healthy" if is_ready(obj) else "unhealthy",
                "deployment": info["deployment"],
                "ready": info["ready"],
                "message": info["message"],
                "sandboxes": (obj.get("status") or {}).get("sandboxes", []),
            }
        if entry.get("phase") not in ("Running", "Unhealthy"):  # nothing to run the hook in
            return {
                "status": (entry.get("phase") or "Starting").lower(),
                "sandbox_id": sandbox_id,
                "deployment": obj["metadata"]["name"],
                "index": entry["index"],
                "message": entry.get("message") or f"sandbox is {entry.get('phase')}",
            }
        run = await self.start_execution(
            deployment=obj["metadata"]["name"],
            sandbox_id=sandbox_id,
            timeout=timeout,
            hook="healthCheck",
        )
        result = await self.wait_execution(run, wait_timeout=timeout + 30)
        return {
            "status": "healthy" if result["status"] == "success" else "unhealthy",
            "sandbox_id": sandbox_id,
            "deployment": obj["metadata"]["name"],
            "index": entry["index"],
            "message": result["error"] or "healthCheck hook passed",
            "exit_code": result["exit_code"],
            "output": (result["stdout"] + result["stderr"]).strip()[-1024:],
            "duration": result["duration"],
            "execution": run,
            "consecutive_failures": entry.get("consecutiveFailures", 0),
        }

    # -- executions --------------------------------------------------------------------------

    async def execute_template(
        self,
        sandbox_id: str,
        input_data: Mapping[str, Any] | None = None,
        timeout: int = 60,
        ttl_seconds_after_finished: int | None = None,
    ) -> dict[str, Any]:
        """Run the template's main script in that sandbox with the JSON input; returns
        status (success or error), result, error, stdout, stderr, exit_code and duration.
        A crashing script or non-JSON output is status error, not an exception."""
        name = await self.start_template_execution(
            sandbox_id, input_data, timeout, ttl_seconds_after_finished
        )
        return await self.wait_execution(name)

    async def start_template_execution(
        self,
        sandbox_id: str,
        input_data: Mapping[str, Any] | None = None,
        timeout: int = 60,
        ttl_seconds_after_finished: int | None = None,
    ) -> str:
        """Like execute_template without waiting (a deployment name runs in any of its ready
        sandboxes); returns the E2BExecution's name for wait_execution or stream_execution."""
        obj, entry = await self._locate(sandbox_id)
        return await self.start_execution(
            deployment=obj["metadata"]["name"],
            sandbox_id=sandbox_id if entry is not None else None,
            input_data=input_data,
            timeout=timeout,
            ttl_seconds_after_finished=ttl_seconds_after_finished,
        )

    async def execute(
        self,
        *,
        deployment: str | None = None,
        template: str | None = None,
        sandbox_id: str | None = None,
        input_data: Mapping[str, Any] | None = None,
        timeout: int = 60,
        ttl_seconds_after_finished: int | None = None,
    ) -> dict[str, Any]:
        """Create an E2BExecution (in a ready sandbox of `deployment`, or in a new sandbox
        from `template`) and wait for it to finish."""
        name = await self.start_execution(
            deployment=deployment,
            template=template,
            sandbox_id=sandbox_id,
            input_data=input_data,
            timeout=timeout,
            ttl_seconds_after_finished=ttl_seconds_after_finished,
        )
        return await self.wait_execution(name)

    async def start_execution(
        self,
        *,
        deployment: str | None = None,
        template: str | None = None,
        sandbox_id: str | None = None,
        input_data: Mapping[str, Any] | None = None,
        timeout: int = 60,
        ttl_seconds_after_finished: int | None = None,
        hook: str | None = None,
        main_log: Mapping[str, Any] | None = None,
    ) -> str:
        """Create the E2BExecution without waiting; returns its name. It is deleted
        ttl_seconds_after_finished (default: the deployer's execution_ttl) after it finished.
        hook (healthCheck) runs that template hook instead of the main script; main_log
        (spec.mainLog) prints the main script's output instead."""
        ttl = ttl_seconds_after_finished
        spec: dict[str, Any] = {
            "input": dict(input_data or {}),
            "timeoutSeconds": timeout,
            "ttlSecondsAfterFinished": self.execution_ttl if ttl is None else ttl,
        }
        if deployment:
            spec["deploymentRef"] = {"name": deployment}
        if template:
            spec["templateRef"] = {"name": resource_name(template)}
        if sandbox_id:
            spec["sandboxID"] = sandbox_id
        if hook:
            spec["hook"] = hook
        if main_log is not None:
            spec["mainLog"] = dict(main_log)
        prefix = (deployment or resource_name(template or "x"))[:40]
        body = {
            "apiVersion": api.API_VERSION,
            "kind": "E2BExecution",
            "metadata": {"name": f"{prefix}-{secrets.token_hex(4)}"},
            "spec": spec,
        }
        found = api.problems("E2BExecution", body)
        if found:
            raise api.InvalidObject("execution", found)

        async def create(objects: Objects) -> dict[str, Any]:
            if deployment:
                await objects.get(DEPLOYMENTS, deployment)
            else:
                await objects.get(TEMPLATES, spec["templateRef"]["name"])
            return await objects.create(EXECUTIONS, body)

        return (await self._call(create))["metadata"]["name"]

    async def wait_execution(self, name: str, wait_timeout: float | None = None) -> dict[str, Any]:
        """Wait for the execution to finish; its result dict (see execute_template)."""
        final: dict[str, Any] = {}
        async for obj in self.watch_execution(name, wait_timeout):
            final = obj
        return execution_result(final)

    async def stream_execution(
        self, name: str, wait_timeout: float | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Follow the execution live. Yields {"event": "status", "phase", "message",
        "sandbox_id"} at each phase, {"event": "output", "stream", "line"} for each line as it
        is printed ({"event": "gap", "stream", "chars"} for output that went by too fast to
        see), and last {"event": "result", ...the execute_template dict}."""
        cursor = OutputCursor()
        phase, final = None, {}
        async for obj in self.watch_execution(name, wait_timeout):
            final, status = obj, obj.get("status") or {}
            for event in cursor.advance(status, final=status.get("phase") in FINISHED):
                yield event
            if (status.get("phase") or "Pending") != phase:
                phase = status.get("phase") or "Pending"
                yield {
                    "event": "status",
                    "phase": phase,
                    "message": status.get("message", ""),
                    "sandbox_id": status.get("sandboxID"),
                }
        yield {"event": "result", **execution_result(final)}

    async def main_log(
        self, deployment: str, *, instance: int | None = None, follow: bool = False
    ) -> AsyncIterator[dict[str, Any]]:
        """The main script's output (/app/main.log) of one instance of the deployment (the
        first live one by default), like `kubectl logs [-f]`: yields {"event": "output",
        "stream", "line"} per line ("stderr" lines are the reader's own complaints, e.g. no
        log yet) and {"event": "gap", "stream", "chars"} for output too fast to carry (status
        holds the last 4 KiB per write). Without follow it ends after the whole log; with
        follow it keeps yielding what is appended until the caller stops (the execution is
        then deleted, which ends the reader in the sandbox) or the reader fails, e.g. the
        sandbox went away ({"event": "end", "message"} last); every MAIN_LOG_FOLLOW_SECONDS
        a new execution resumes from the next line."""
        name = resource_name(deployment)
        sandbox_id = await self._live_sandbox(name, instance)
        line = 1
        while True:
            run = await self.start_execution(
                deployment=name,
                sandbox_id=sandbox_id,
                main_log={"follow": follow, "fromLine": line},
                timeout=MAIN_LOG_FOLLOW_SECONDS if follow else 60,
                ttl_seconds_after_finished=0,
            )
            result: dict[str, Any] = {}
            try:
                async for event in self.stream_execution(run):
                    if event["event"] in ("output", "gap"):
                        line += event["event"] == "output" and event["stream"] == "stdout"
                        yield event
                    elif event["event"] == "result":
                        result = event
            finally:
                with contextlib.suppress(NotFoundError):
                    await self._call(lambda o, run=run: o.delete(EXECUTIONS, run))
            if result.get("status") != "success":
                if not follow:
                    raise ToolkitError(
                        f"reading the main log of sandbox {sandbox_id} failed: {result['error']}"
                    )
                yield {"event": "end", "message": f"sandbox {sandbox_id}: {result['error']}"}
                return
            if not follow:
                return

    async def _live_sandbox(self, deployment: str, instance: int | None) -> str:
        """The sandbox of that instance (index), or of the lowest live index."""
        obj = await self._call(lambda o: o.get(DEPLOYMENTS, deployment))
        live = sorted(
            (s["index"], s["sandboxID"])
            for s in (obj.get("status") or {}).get("sandboxes") or []
            if s.get("phase") in MAIN_LOG_PHASES
        )
        found = [sid for i, sid in live if instance is None or i == instance]
        if not found:
            which = "no instance" if instance is None else f"instance {instance}"
            indices = ", ".join(str(i) for i, _ in live) or "none"
            raise NotFoundError(
                f"deployment {deployment!r} has {which} with a live sandbox"
                f" (live instances: {indices})"
            )
        return found[0]

    async def watch_execution(
        self, name: str, wait_timeout: float | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield the execution object each time its status changes, until it finishes
        (through a watch, so no change is missed). wait_timeout defaults to the execution's
        timeout plus the deployment ready timeout (time to create a sandbox)."""
        async with self._session() as objects:
            first = await objects.get(EXECUTIONS, name)
            limit = wait_timeout or first["spec"].get("timeoutSeconds", 60) + self.ready_timeout
            seen: Any = None
            async for obj in objects.watch(EXECUTIONS, name, limit):
                status = obj.get("status") or {}
                if status == seen:
                    continue
                seen = status
                if self.progress:
                    self.progress(f"execution {name}: {status.get('phase') or 'Pending'}")
                yield obj
                if status.get("phase") in FINISHED:
                    return
        raise WaitTimeout(f"execution {name!r} did not finish in {limit:.0f}s")

    # -- plumbing ----------------------------------------------------------------------------

    def _instance(self, obj: Mapping[str, Any], index: int) -> dict[str, Any]:
        """The seed's status dict of one instance (slot) of the deployment."""
        entries = [
            s for s in (obj.get("status") or {}).get("sandboxes") or [] if s["index"] == index
        ]
        entry = next((s for s in entries if s.get("phase") == "Running"), None) or (
            entries[0] if entries else {}
        )
        spec = E2BDeploymentSpec.from_wire(obj["spec"])
        return {
            **deployment_info(obj),
            "sandbox_id": entry.get("sandboxID"),
            "index": index,
            "status": entry.get("phase") or "Pending",
            "healthy": entry.get("healthy"),
            "deployed_at": entry.get("startedAt"),
            "config": instance_config(spec, index),
            "message": entry.get("message") or "",
        }

    async def _retire(self, name: str, index: int, wait: bool) -> None:
        """Remove instance `index` of the deployment (replicas - 1, the index retired)."""

        async def retire(objects: Objects) -> None:
            obj = await objects.get(DEPLOYMENTS, name)
            retired = sorted({*obj["spec"].get("retiredInstances", []), index})
            await objects.patch(
                DEPLOYMENTS,
                name,
                {
                    "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                    "spec": {
                        "replicas": max(obj["spec"].get("replicas", 1) - 1, 0),
                        "retiredInstances": retired,
                    },
                },
            )

        await self._with_retries(retire)
        if wait:
            await self.wait_ready(name)

    async def _patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        await self._call(lambda o: o.patch(DEPLOYMENTS, name, {"spec": spec}))

    async def _with_retries(self, fn: Callable[[Objects], Awaitable[T]], tries: int = 5) -> T:
        """Run a read-modify-write; on a Conflict (someone wrote in between) read again."""
        for attempt in range(tries - 1):
            try:
                return await self._call(fn)
            except Conflict:
                await asyncio.sleep(0.1 * (attempt + 1))
        return await self._call(fn)

    async def _locate(self, target: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """(deployment, sandbox entry) for a sandbox ID, or (deployment, None) for a name."""

        async def locate(objects: Objects) -> tuple[dict[str, Any], dict[str, Any] | None]:
            deployments = await objects.list(DEPLOYMENTS)
            for d in deployments:
                for s in (d.get("status") or {}).get("sandboxes") or []:
                    if s.get("sandboxID") == target:
                        return d, s
            for d in deployments:
                if d["metadata"]["name"] == target:
                    return d, None
            raise NotFoundError(
                f"no deployment or sandbox {target!r} in namespace {self.namespace}"
            )

        return await self._call(locate)

    async def _call(self, fn: Callable[[Objects], Awaitable[T]]) -> T:
        async with self._session() as objects:
            return await fn(objects)

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[Objects]:
        if self.api_client is not None:
            yield Objects(self.api_client, self.namespace)
            return
        api_client = await connect(self.kubeconfig, self.context)
        async with api_client:
            yield Objects(api_client, self.namespace)
