"""kubectl-e2b: the `kubectl e2b` plugin over the registry and the deployer.

Data goes to stdout (a table, or -o json|yaml); progress and errors go to stderr; an error
is one line and a non-zero exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from e2b_operator import api

from .builder import dump_yaml
from .cluster import ToolkitError
from .deployer import TemplateDeployer
from .interrupts import until_signalled
from .registry import TemplateRegistry, template_summary
from .scaffolds import SCAFFOLDS, scaffold


def emit(data: Any, output: str | None, table: Callable[[Any], str]) -> None:
    """Print data as JSON, YAML or (default) a human table."""
    if output == "json":
        print(json.dumps(data, indent=2, default=str))
    elif output == "yaml":
        print(dump_yaml(data), end="")
    else:
        print(table(data))


def columns(rows: list[list[Any]], header: list[str]) -> str:
    text = [[str(c if c is not None else "") for c in r] for r in [header, *rows]]
    widths = [max(len(r[i]) for r in text) for i in range(len(header))]
    return "\n".join(
        "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in text
    )


def template_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "No templates found."
    return columns(
        [
            [r["name"], r["type"], r["category"], r["phase"], (r["description"] or "")[:60]]
            for r in rows
        ],
        ["NAME", "TYPE", "CATEGORY", "PHASE", "DESCRIPTION"],
    )


def deployment_table(info: dict[str, Any]) -> str:
    return columns(
        [
            [
                info["deployment"],
                info["template"],
                info["ready"],
                info["status"],
                ",".join(info["sandbox_ids"]),
            ]
        ],
        ["NAME", "TEMPLATE", "READY", "STATUS", "SANDBOXES"],
    )


def key_values(data: dict[str, Any]) -> str:
    return "\n".join(
        f"{k}: {json.dumps(v) if isinstance(v, dict | list) else v}" for k, v in data.items()
    )


def parse_json(text: str | None, flag: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolkitError(f"{flag} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ToolkitError(f"{flag} must be a JSON object, got {type(value).__name__}")
    return value


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ToolkitError(f"--env {pair!r}: expected KEY=VALUE")
        env[key] = value
    return env


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# -- commands ---------------------------------------------------------------------------------


def cmd_templates(args: argparse.Namespace) -> int:
    if args.action == "new":
        return cmd_new(args)
    registry = TemplateRegistry(args.namespace, args.kubeconfig, args.context)
    if args.action == "list":
        emit([template_summary(t) for t in registry.list_templates()], args.output, template_table)
    elif args.action == "search":
        emit(
            [template_summary(t) for t in registry.search_templates(args.query)],
            args.output,
            template_table,
        )
    elif args.action == "show":
        found = registry.get_template(args.name)
        if found is None:
            raise ToolkitError(
                f"template {args.name!r} not found in namespace {registry.namespace}"
            )
        obj = found.model_dump(mode="json", by_alias=True, exclude_none=True)
        emit(obj, args.output or "yaml", key_values)
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    """Scaffold a manifest (and register it with --apply)."""
    agents = [a for a in (args.agents or "").split(",") if a]
    builder = scaffold(args.type, args.name, args.description, args.strategy, agents)
    if args.apply:
        registry = TemplateRegistry(args.namespace, args.kubeconfig, args.context)
        registry.register_template(args.name, builder)
        progress(f"template {args.name} registered in namespace {registry.namespace}")
    emit(builder.to_manifest(args.name), args.output or "yaml", key_values)
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    info = _run(
        args,
        lambda d: d.deploy_template(
            args.template,
            config=parse_json(args.config, "--config"),
            replicas=args.replicas,
            name=args.name,
            env=parse_env(args.env),
            wait=args.wait,
        ),
    )
    emit(info, args.output, deployment_table)
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    if bool(args.deployment) == bool(args.template):
        raise ToolkitError("give a DEPLOYMENT or --template TEMPLATE (exactly one)")
    input_data = parse_json(args.input, "--input")

    async def run(deployer: TemplateDeployer) -> dict[str, Any]:
        name = await deployer.start_execution(
            deployment=args.deployment,
            template=args.template,
            sandbox_id=args.sandbox,
            input_data=input_data,
            timeout=args.timeout,
        )
        if not args.follow:
            return await deployer.wait_execution(name)
        async for event in deployer.stream_execution(name):
            if event["event"] == "output":
                print(event["line"], file=sys.stderr, flush=True)
            elif event["event"] == "gap":
                progress(f"... {event['chars']} characters of {event['stream']} went by unseen")
            elif event["event"] == "result":
                return {k: v for k, v in event.items() if k != "event"}
        raise ToolkitError(f"execution {name} ended without a result")

    result = _run(args, run)
    if args.output:
        emit(result, args.output, key_values)
    elif result["result"] is not None:
        print(json.dumps(result["result"], indent=2))
    elif not args.follow:
        if result["stdout"]:
            print(result["stdout"], end="" if result["stdout"].endswith("\n") else "\n")
        if result["stderr"]:
            print(result["stderr"], end="", file=sys.stderr)
    if result["status"] != "success":
        print(f"error: execution {result['execution']} failed: {result['error']}", file=sys.stderr)
        return 1
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    """The main script's output of an instance: stdout; the reader's own notes: stderr."""

    async def run(deployer: TemplateDeployer) -> None:
        logs = deployer.main_log(args.deployment, instance=args.instance, follow=args.follow)
        async for event in logs:
            if event["event"] == "output":
                out = sys.stdout if event["stream"] == "stdout" else sys.stderr
                print(event["line"], file=out, flush=True)
            elif event["event"] == "gap":
                progress(f"... {event['chars']} characters of the log went by unseen")
            elif event["event"] == "end":
                progress(f"log ended: {event['message']}")

    def stopping(sig: signal.Signals) -> None:
        progress(f"{sig.name}: removing the log reader (send it again to quit at once)")

    # Ctrl-C (or SIGTERM) is how a follow ends; the execution reading the log is deleted on
    # the way out.
    deployer = TemplateDeployer(args.namespace, args.kubeconfig, args.context)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(until_signalled(run(deployer), on_stop=stopping))
    return 0


def cmd_scale(args: argparse.Namespace) -> int:
    info = _run(args, lambda d: d.scale(args.deployment, args.replicas, wait=args.wait))
    emit(info, args.output, deployment_table)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    info = _deployer(args).get_deployment_status(args.deployment)
    emit(info, args.output, deployment_table)
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    health = _run(args, lambda d: d.health_check(args.target))
    emit(health, args.output, key_values)
    return 0 if health["status"] == "healthy" else 1


def cmd_stats(args: argparse.Namespace) -> int:
    emit(_deployer(args).get_deployment_stats(), args.output, key_values)
    return 0


def _deployer(args: argparse.Namespace) -> TemplateDeployer:
    return TemplateDeployer(args.namespace, args.kubeconfig, args.context, progress=progress)


def _run(args: argparse.Namespace, call: Callable[[TemplateDeployer], Any]) -> Any:
    deployer = _deployer(args)
    return asyncio.run(call(deployer))


# -- parser -----------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-n",
        "--namespace",
        default=argparse.SUPPRESS,
        help="namespace (default: the kubeconfig context's)",
    )
    common.add_argument("--kubeconfig", default=argparse.SUPPRESS, help="kubeconfig file")
    common.add_argument("--context", default=argparse.SUPPRESS, help="kubeconfig context")
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("-o", "--output", choices=["json", "yaml"], help="output format")
    wait = argparse.ArgumentParser(add_help=False)
    wait.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="wait until Ready (default: --wait)",
    )

    top = argparse.ArgumentParser(
        prog="kubectl e2b",
        parents=[common],
        description="E2B templates, deployments and executions through the Kubernetes API.",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    templates = sub.add_parser(
        "templates", parents=[common], help="list, search, show or scaffold E2BTemplates"
    )
    tsub = templates.add_subparsers(dest="action", required=True, metavar="ACTION")
    tsub.add_parser("list", parents=[common, data], help="list templates")
    search = tsub.add_parser(
        "search", parents=[common, data], help="search name, description, tags and category"
    )
    search.add_argument("query")
    show = tsub.add_parser("show", parents=[common, data], help="show one template")
    show.add_argument("name")
    new = tsub.add_parser(
        "new",
        parents=[common, data],
        help="scaffold an E2BTemplate manifest through TemplateBuilder",
    )
    new.add_argument("name", help="metadata.name, e.g. my-agent")
    new.add_argument("--type", choices=SCAFFOLDS, default="python", help="template preset")
    new.add_argument("--strategy", default="momentum", help="trading strategy (--type trading)")
    new.add_argument("--agents", help="comma-separated agent types (--type claude-flow)")
    new.add_argument("--description", help="template description")
    new.add_argument("--apply", action="store_true", help="also register it in the cluster")
    templates.set_defaults(func=cmd_templates)

    deploy = sub.add_parser(
        "deploy", parents=[common, data, wait], help="create an E2BDeployment of a template"
    )
    deploy.add_argument("template")
    deploy.add_argument("--replicas", type=int, default=1)
    deploy.add_argument("--name", help="deployment name (default: TEMPLATE-random)")
    deploy.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    deploy.add_argument("--config", help="JSON object given to every instance")
    deploy.set_defaults(func=cmd_deploy)

    exe = sub.add_parser(
        "exec",
        parents=[common, data],
        help="run the main script once (an E2BExecution) and print its result",
    )
    exe.add_argument("deployment", nargs="?", help="run in a ready sandbox of this deployment")
    exe.add_argument("--template", help="run in a new sandbox from this template instead")
    exe.add_argument("--sandbox", help="pin a sandbox of the deployment")
    exe.add_argument("--input", help="JSON object given to the script as argv[1]")
    exe.add_argument("--timeout", type=int, default=60, help="seconds (default 60)")
    exe.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="print each line the script prints (on stderr) as it is printed; the result"
        " still goes to stdout",
    )
    exe.set_defaults(func=cmd_exec)

    logs = sub.add_parser(
        "logs",
        parents=[common],
        help="print an instance's main script output (/app/main.log), like kubectl logs",
    )
    logs.add_argument("deployment")
    logs.add_argument(
        "--instance", type=int, help="instance index (default: the first live instance)"
    )
    logs.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="keep printing new output until Ctrl-C or the sandbox goes away",
    )
    logs.set_defaults(func=cmd_logs)

    scale = sub.add_parser("scale", parents=[common, data, wait], help="set replicas")
    scale.add_argument("deployment")
    scale.add_argument("replicas", type=int)
    scale.set_defaults(func=cmd_scale)

    status = sub.add_parser("status", parents=[common, data], help="deployment status")
    status.add_argument("deployment", help="deployment name or sandbox ID")
    status.set_defaults(func=cmd_status)

    health = sub.add_parser(
        "health",
        parents=[common, data],
        help="health of a deployment or sandbox (exit 1 if unhealthy)",
    )
    health.add_argument("target", metavar="DEPLOYMENT|SANDBOX")
    health.set_defaults(func=cmd_health)

    stats = sub.add_parser("stats", parents=[common, data], help="namespace totals")
    stats.set_defaults(func=cmd_stats)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    for name in ("namespace", "kubeconfig", "context"):
        setattr(args, name, getattr(args, name, None))
    try:
        return args.func(args)
    except api.InvalidObject as exc:
        print(f"error: {str(exc).splitlines()[0]} {'; '.join(exc.problems)}", file=sys.stderr)
    except (ToolkitError, ValueError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
