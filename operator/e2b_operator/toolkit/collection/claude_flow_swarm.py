"""Claude-Flow swarm orchestrator template: topology, task decomposition, message passing.

Input (JSON, argv[1] or stdin), all optional:
  task               the task to decompose
  agent_types        ["coordinator", "researcher", ...]; one agent per type, up to max_agents
  swarm_topology     "mesh" | "hierarchical" | "ring" | "star"
  max_agents         1..64
  coordination_mode  "collaborative" | "consensus" | "independent"
  rounds             message-passing rounds (default: enough to converge)
  enable_memory      include the swarm's shared memory
  mode               "dry_run" (deterministic, offline) | "llm" (Anthropic Messages API);
                     default "llm" when ANTHROPIC_API_KEY is set, else "dry_run"
  hooks              Claude-Flow hooks, e.g. {"pre-task": "npx claude-flow@alpha hooks
                     pre-task"}: run (shell, 300 s each) before and after the task. With
                     the template's preinstalled claude-flow they run offline through it
                     (`npx claude-flow@alpha` is that CLI; pre-task gets the task as its
                     --description); without it, only in llm mode (npx downloads it)
Output: one JSON document; errors print {"error": ...} and exit 1.
"""

import hashlib
import os
import re
import shlex
import subprocess
import sys
from collections import Counter, deque

from agent_io import call_claude, cli_version, installed_cli, run_main

TOPOLOGIES = ("mesh", "hierarchical", "ring", "star")
MODES = ("collaborative", "consensus", "independent")
ROLES = {  # role: (phase, action)
    "researcher": (0, "Research requirements and prior art for"),
    "architect": (1, "Design the architecture for"),
    "analyst": (2, "Analyse data and trade-offs of"),
    "risk_manager": (2, "Assess the risks of"),
    "coder": (3, "Implement"),
    "optimizer": (3, "Optimise"),
    "tester": (4, "Write and run tests for"),
    "reviewer": (4, "Review the work on"),
    "synthesizer": (5, "Synthesise the findings on"),
    "coordinator": (5, "Coordinate and merge the results of"),
}
DEFAULT_TYPES = ["coordinator", "researcher", "coder", "analyst", "tester"]
STOPWORDS = frozenset(
    ("the", "and", "for", "with", "from", "that", "this", "into", "over", "then", "than", "what")
)


def build_topology(kind: str, n: int) -> tuple[list[tuple[int, int]], bool]:
    """Directed edges between agent indexes (agent 0 is the hub/root) and whether one-way."""
    if kind == "mesh":
        return [(a, b) for a in range(n) for b in range(n) if a != b], False
    if kind == "star":
        return [e for i in range(1, n) for e in ((0, i), (i, 0))], False
    if kind == "hierarchical":
        return [e for i in range(1, n) for e in (((i - 1) // 2, i), (i, (i - 1) // 2))], False
    return ([(i, (i + 1) % n) for i in range(n)] if n > 1 else []), True


def diameter(n: int, edges: list[tuple[int, int]]) -> int:
    """Longest shortest path (in hops) of the directed graph."""
    neighbours: dict[int, list[int]] = {i: [] for i in range(n)}
    for a, b in edges:
        neighbours[a].append(b)
    longest = 0
    for start in range(n):
        dist, queue = {start: 0}, deque([start])
        while queue:
            node = queue.popleft()
            for nxt in neighbours[node]:
                if nxt not in dist:
                    dist[nxt] = dist[node] + 1
                    queue.append(nxt)
        longest = max(longest, *dist.values())
    return longest


def clauses(task: str) -> list[str]:
    """Split a task into its clauses (sentences, semicolons, 'and then')."""
    parts = re.split(r"[.;\n]+|\band then\b", task)
    return [p.strip(" ,") for p in parts if p.strip(" ,")] or [task]


def key_terms(text: str, limit: int = 5) -> list[str]:
    words = [w for w in re.findall(r"[a-z][a-z0-9_-]{3,}", text.lower()) if w not in STOPWORDS]
    return [w for w, _ in Counter(words).most_common(limit)]


def digest(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("|".join(parts).encode()).digest()[:4], "big")


def decompose(task: str, roles: list[str]) -> list[str]:
    """One subtask per agent: the role's action on a clause of the task (round-robin)."""
    parts, workers = clauses(task), [i for i, r in enumerate(roles) if r != "coordinator"]
    subtasks = []
    for i, role in enumerate(roles):
        action = ROLES.get(role, (2, f"Contribute {role} expertise to"))[1]
        target = task if i not in workers else parts[workers.index(i) % len(parts)]
        subtasks.append(f"{action} {target[0].lower()}{target[1:]}")
    return subtasks


def plan(agents: list[dict]) -> list[dict]:
    """Order the subtasks by role phase; each step depends on the previous phase's steps."""
    order = sorted(agents, key=lambda a: (ROLES.get(a["role"], (2, ""))[0], a["index"]))
    steps, by_phase = [], {}
    for step, agent in enumerate(order, 1):
        phase = ROLES.get(agent["role"], (2, ""))[0]
        by_phase.setdefault(phase, []).append(step)
        earlier = [p for p in by_phase if p < phase]
        depends = by_phase[max(earlier)] if earlier else []
        steps.append(
            {
                "step": step,
                "agent": agent["id"],
                "role": agent["role"],
                "subtask": agent["subtask"],
                "depends_on": list(depends),
            }
        )
    return steps


def work(agent: dict, task: str, mode: str, model: str) -> dict:
    """An agent's own contribution: deterministic in dry-run, an LLM answer in llm mode."""
    if mode == "llm":
        prompt = f"You are the {agent['role']} agent of a swarm working on: {task}\n"
        prompt += f"Your subtask: {agent['subtask']}\nAnswer concisely."
        text = call_claude(prompt, model, max_tokens=512, timeout=120)
        return {"summary": text, "key_terms": key_terms(text)}
    confidence = 0.6 + (digest(agent["id"], agent["subtask"]) % 350) / 1000
    return {
        "summary": f"{agent['role']} completed: {agent['subtask']}",
        "key_terms": key_terms(agent["subtask"]),
        "confidence": round(confidence, 3),
    }


def gossip(agents: list[dict], edges: list[tuple[int, int]], rounds: int, mode: str) -> list[dict]:
    """Synchronous message passing: each round every agent sends what it knows to neighbours."""
    n, history = len(agents), []
    for number in range(1, rounds + 1):
        if mode == "independent":
            break
        snapshot = [set(a["known"]) for a in agents]
        messages = 0
        for a, b in edges:
            new = snapshot[a] - agents[b]["known"]
            if new:
                agents[b]["known"] |= new
                agents[a]["messages_sent"] += 1
                agents[b]["messages_received"] += 1
                messages += 1
        coverage = sum(len(a["known"]) for a in agents) / (n * n)
        entry = {"round": number, "messages": messages, "coverage": round(coverage, 4)}
        if mode == "consensus":
            votes = [vote(agents, a) for a in agents]
            entry["votes"] = dict(sorted(Counter(votes).items()))
            entry["consensus"] = len(set(votes)) == 1
        history.append(entry)
        if coverage == 1 and messages == 0:
            break
    return history


def vote(agents: list[dict], voter: dict) -> str:
    """The agent, among the results the voter knows, with the most confident output."""
    known = [agents[i] for i in sorted(voter["known"])]
    best = max(known, key=lambda a: (a["output"].get("confidence", 0), -a["index"]))
    return best["id"]


NPX_CLAUDE_FLOW = "npx claude-flow@alpha "


def hook_command(command: str, task: str, cli: str) -> str:
    """The hook as the installed claude-flow (`cli`) runs it: the seed's
    `npx claude-flow@alpha` is that CLI, and a pre-task without a description describes the
    task."""
    if command.startswith(NPX_CLAUDE_FLOW):
        command = f"{shlex.quote(cli)} {command[len(NPX_CLAUDE_FLOW) :]}"
    words = shlex.split(command)
    if words[1:3] == ["hooks", "pre-task"] and not {"-d", "--description"} & set(words):
        command += " --description " + shlex.quote(task)
    return command


def run_hook(command: str, task: str, llm: bool) -> dict:
    """One Claude-Flow hook: through the installed CLI, or through npx in llm mode (with
    network); skipped when neither is there."""
    cli = installed_cli("claude-flow")
    if cli:
        command = hook_command(command, task, cli)
    elif not llm:
        return {"command": command, "status": "skipped (claude-flow not installed, dry run)"}
    proc = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=300)
    output = (proc.stdout + proc.stderr).strip()[-500:]
    return {"command": command, "exit_code": proc.returncode, "output": output}


def run(config: dict) -> dict:
    task = str(config.get("task", "Analyse the market. Propose a strategy; test it"))
    types = config.get("agent_types", DEFAULT_TYPES)
    if not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types):
        raise ValueError("agent_types must be a non-empty list of strings")
    topology = config.get("swarm_topology", "mesh")
    if topology not in TOPOLOGIES:
        raise ValueError(f"swarm_topology must be one of {', '.join(TOPOLOGIES)}")
    coordination = config.get("coordination_mode", "collaborative")
    if coordination not in MODES:
        raise ValueError(f"coordination_mode must be one of {', '.join(MODES)}")
    max_agents = config.get("max_agents", 8)
    if not isinstance(max_agents, int) or not 1 <= max_agents <= 64:
        raise ValueError("max_agents must be an integer in 1..64")
    mode = config.get("mode", "llm" if os.environ.get("ANTHROPIC_API_KEY") else "dry_run")
    if mode not in ("dry_run", "llm"):
        raise ValueError("mode must be dry_run or llm")
    model = config.get("model", os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-5"))
    hooks = config.get("hooks") or {}
    if not isinstance(hooks, dict) or not all(isinstance(v, str) for v in hooks.values()):
        raise ValueError("hooks must be an object of {name: command}")
    llm = mode == "llm"
    ran = {"pre-task": run_hook(hooks["pre-task"], task, llm)} if "pre-task" in hooks else {}

    roles = types[:max_agents]
    if "coordinator" in roles:  # the coordinator is the hub / root
        roles.insert(0, roles.pop(roles.index("coordinator")))
    n = len(roles)
    edges, directed = build_topology(topology, n)
    agents = [
        {"index": i, "id": f"{role}-{i + 1}", "role": role, "subtask": subtask, "known": {i}}
        for i, (role, subtask) in enumerate(zip(roles, decompose(task, roles), strict=True))
    ]
    for agent in agents:
        agent.update(output=work(agent, task, mode, model), messages_sent=0, messages_received=0)
    diam = diameter(n, edges)
    rounds = gossip(agents, edges, int(config.get("rounds", diam + 1)), coordination)
    converged = all(len(a["known"]) == n for a in agents)
    steps = plan(agents)
    by_id = {a["id"]: a for a in agents}
    result = {
        "template": "claude_flow_swarm",
        "mode": mode,
        "claude_flow": cli_version("claude-flow"),
        "task": task,
        "coordination_mode": coordination,
        "topology": {
            "type": topology,
            "agents": n,
            "directed": directed,
            "edges": [[agents[a]["id"], agents[b]["id"]] for a, b in edges],
            "diameter": diam,
        },
        "plan": steps,
        "rounds": rounds,
        "converged": converged,
        "rounds_to_converge": next((r["round"] for r in rounds if r["coverage"] == 1), None),
        "agents": [
            {
                "id": a["id"],
                "role": a["role"],
                "subtask": a["subtask"],
                "neighbours": sorted(agents[b]["id"] for x, b in edges if x == a["index"]),
                "output": a["output"],
                "messages_sent": a["messages_sent"],
                "messages_received": a["messages_received"],
                "known_results": sorted(agents[i]["id"] for i in a["known"]),
            }
            for a in agents
        ],
        # the hub merges every result in plan order once it has them all
        "synthesis": [by_id[s["agent"]]["output"]["summary"] for s in steps]
        if len(agents[0]["known"]) == n
        else [],
    }
    if coordination == "consensus" and rounds:
        result["consensus"] = {"reached": rounds[-1]["consensus"], "votes": rounds[-1]["votes"]}
    if config.get("enable_memory", False):
        result["memory"] = {f"swarm/{a['id']}/result": a["output"]["summary"] for a in agents}
    if "post-task" in hooks:
        ran["post-task"] = run_hook(hooks["post-task"], task, llm)
    if ran:
        result["hooks"] = ran
    return result


if __name__ == "__main__":
    sys.exit(run_main(run, (OSError, KeyError), section="claude_flow"))
