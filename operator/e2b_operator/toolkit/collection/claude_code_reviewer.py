"""Claude Code reviewer template: review source code with real linters and score it.

Input (JSON, argv[1] or stdin):
  files            {path: content}  or  path: a directory (its *.py, *.js, *.ts, *.sh, ... files)
  max_line_length  default 100
  max_complexity   default 10
  min_score        the review passes at or above this score (default 70)
  linters          which checks run (default: the template's claude_code.linters, else all):
                   syntax, pyflakes, mccabe, bandit, style, todo
  llm              also ask Claude Code for a review (needs ANTHROPIC_API_KEY; default false)
Checks: syntax (compile); pyflakes (unused imports, undefined names, ...), mccabe
(complexity) and bandit (security) when installed (the template installs them), otherwise
built-in ast equivalents, reported as such in "analysers"; style (line length, bare except,
mutable defaults); todo (TODO/FIXME); hardcoded secrets and private keys (with bandit).
Output: one JSON document; errors print {"error": ...} and exit 1.
"""

import ast
import builtins
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import tokenize
from collections import Counter
from pathlib import Path

from agent_io import call_claude, claude_code, cli_version, run_main

ALL_LINTERS = ("syntax", "pyflakes", "mccabe", "bandit", "style", "todo")
BANDIT_SEVERITY = {"HIGH": "error", "MEDIUM": "warning", "LOW": "info"}
SOURCE_SUFFIXES = (".py", ".js", ".ts", ".sh", ".go", ".rb", ".java", ".yaml", ".yml", ".toml")
PENALTY = {"error": 10, "warning": 3, "info": 1}
SECRET_NAME = re.compile(r"(password|passwd|secret|token|api_?key|private_?key)", re.I)
SECRET_TEXT = [
    ("S105", re.compile(r"AKIA[0-9A-Z]{16}"), "AWS access key id"),
    ("S105", re.compile(r"-----BEGIN (RSA |EC |OPENSSH )?PRIVATE KEY-----"), "private key"),
    ("S105", re.compile(r"sk-ant-[A-Za-z0-9_-]{20,}"), "Anthropic API key"),
]
BRANCHES = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.IfExp, ast.Assert)
BRANCHES += (ast.ExceptHandler, ast.match_case)
TODO = re.compile(r"\b(TODO|FIXME|XXX|HACK)\b")
BUILTINS = frozenset(dir(builtins)) | {"__file__", "__name__", "__doc__", "__spec__", "__path__"}


def finding(path: str, line: int, code: str, severity: str, message: str) -> dict:
    return {"file": path, "line": line, "code": code, "severity": severity, "message": message}


class Bindings(ast.NodeVisitor):
    """Names bound anywhere in a module, imports with their lines, and names loaded."""

    def __init__(self) -> None:
        self.bound: set[str] = set()
        self.imports: dict[str, int] = {}
        self.loaded: list[tuple[str, int]] = []
        self.exported: set[str] = set()

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            name = alias.asname or alias.name.split(".")[0]
            self.bound.add(name)
            self.imports.setdefault(name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                self.bound.add("*")
                continue
            name = alias.asname or alias.name
            self.bound.add(name)
            if node.module != "__future__":
                self.imports.setdefault(name, node.lineno)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.loaded.append((node.id, node.lineno))
        else:
            self.bound.add(node.id)

    def _define(self, node: ast.AST, name: str) -> None:
        self.bound.add(name)
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._define(node, node.name)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._define(node, node.name)

    def visit_arg(self, node: ast.arg) -> None:
        self._define(node, node.arg)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.bound.add(node.name)
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        self.bound.update(node.names)

    visit_Nonlocal = visit_Global  # type: ignore[assignment]

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self.bound.add(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.bound.add(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self.bound.add(node.rest)
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            is_all = isinstance(target, ast.Name) and target.id == "__all__"
            if is_all and isinstance(node.value, (ast.List, ast.Tuple)):
                self.exported.update(
                    e.value for e in node.value.elts if isinstance(e, ast.Constant)
                )
        self.generic_visit(node)


def complexity(func: ast.AST) -> int:
    """McCabe complexity: 1 + decision points, not counting nested functions or classes."""
    score, stack = 1, list(ast.iter_child_nodes(func))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, BRANCHES):
            score += 1
        elif isinstance(node, ast.BoolOp):
            score += len(node.values) - 1
        elif isinstance(node, ast.comprehension):
            score += 1 + len(node.ifs)
        stack.extend(ast.iter_child_nodes(node))
    return score


def call_name(node: ast.Call) -> str:
    """Dotted name of a call's target, e.g. 'subprocess.run'."""
    parts, target = [], node.func
    while isinstance(target, ast.Attribute):
        parts.append(target.attr)
        target = target.value
    if isinstance(target, ast.Name):
        parts.append(target.id)
    return ".".join(reversed(parts))


def security(path: str, tree: ast.AST) -> list[dict]:
    """Dangerous calls and hardcoded secrets."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = call_name(node)
            keywords = {k.arg: k.value for k in node.keywords}
            if name in ("eval", "exec"):
                out.append(finding(path, node.lineno, "S307", "error", f"use of {name}()"))
            elif name in ("os.system", "os.popen"):
                out.append(finding(path, node.lineno, "S605", "error", f"shell command: {name}()"))
            elif name in ("pickle.loads", "pickle.load", "marshal.loads"):
                out.append(finding(path, node.lineno, "S301", "warning", f"unsafe {name}()"))
            elif name == "yaml.load" and "Loader" not in keywords:
                out.append(
                    finding(path, node.lineno, "S506", "warning", "yaml.load without Loader")
                )
            shell = keywords.get("shell")
            if isinstance(shell, ast.Constant) and shell.value is True:
                out.append(finding(path, node.lineno, "S602", "error", f"{name}() with shell=True"))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            value = node.value
            for target in targets:
                name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", "")
                if (
                    SECRET_NAME.search(name)
                    and isinstance(value, ast.Constant)
                    and isinstance(value.value, str)
                    and value.value
                ):
                    msg = f"hardcoded secret in {name}"
                    out.append(finding(path, node.lineno, "S105", "error", msg))
    return out


def builtin_mccabe(path: str, tree: ast.AST, max_complexity: int) -> list[dict]:
    """McCabe complexity per function (when the mccabe package is missing)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            score = complexity(node)
            if score > max_complexity:
                msg = f"{node.name} is too complex ({score} > {max_complexity})"
                out.append(finding(path, node.lineno, "C901", "warning", msg))
    return out


def style(path: str, tree: ast.AST) -> list[dict]:
    """Bare except and mutable default arguments."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for default in node.args.defaults + node.args.kw_defaults:
                if isinstance(default, (ast.List, ast.Dict, ast.Set)):
                    msg = f"mutable default argument in {node.name}"
                    out.append(finding(path, default.lineno, "B006", "warning", msg))
        elif isinstance(node, ast.ExceptHandler) and node.type is None:
            out.append(finding(path, node.lineno, "E722", "warning", "bare except"))
    return out


PYFLAKES_CODES = {
    "UnusedImport": "F401",
    "ImportStarUsed": "F403",
    "RedefinedWhileUnused": "F811",
    "UndefinedName": "F821",
    "UnusedVariable": "F841",
}


def pyflakes_check(path: str, tree: ast.AST) -> list[dict]:
    """The pyflakes package's messages."""
    from pyflakes.checker import Checker

    out = []
    for m in Checker(tree, filename=path).messages:
        kind = type(m).__name__
        severity = "error" if kind.startswith("Undefined") else "warning"
        code = PYFLAKES_CODES.get(kind, "F")
        out.append(finding(path, m.lineno, code, severity, m.message % m.message_args))
    return out


def mccabe_check(path: str, tree: ast.AST, max_complexity: int) -> list[dict]:
    """The mccabe package's complexity per function."""
    import mccabe

    visitor = mccabe.PathGraphingAstVisitor()
    visitor.preorder(tree, visitor)
    out = []
    for graph in visitor.graphs.values():
        score = graph.complexity()
        if score > max_complexity:
            msg = f"{graph.entity} is too complex ({score} > {max_complexity})"
            out.append(finding(path, graph.lineno, "C901", "warning", msg))
    return out


def bandit_check(files: dict[str, str]) -> list[dict]:
    """bandit (the real CLI) over the Python files, in a temporary directory."""
    with tempfile.TemporaryDirectory() as root:
        for rel, source in files.items():
            target = Path(root, rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(source)
        cmd = [sys.executable, "-m", "bandit", "-q", "-f", "json", "-r", root]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        report = json.loads(proc.stdout or "{}")
        if "results" not in report:
            raise OSError(f"bandit failed: {proc.stderr.strip()[-300:]}")
        return [
            finding(
                str(Path(r["filename"]).relative_to(root)),
                r["line_number"],
                r["test_id"],
                BANDIT_SEVERITY.get(r["issue_severity"], "warning"),
                r["issue_text"],
            )
            for r in report["results"]
        ]


def analysers() -> dict[str, str]:
    """Which implementation runs each analyser: the real package, or the built-in fallback."""
    return {
        name: name if importlib.util.find_spec(name) else "builtin (not installed)"
        for name in ("pyflakes", "mccabe", "bandit")
    }


def names(path: str, tree: ast.AST) -> list[dict]:
    """Pyflakes-style unused imports (F401) and undefined names (F821), module-wide."""
    b = Bindings()
    b.visit(tree)
    used = {name for name, _ in b.loaded} | b.exported
    out = [
        finding(path, line, "F401", "warning", f"'{name}' imported but unused")
        for name, line in sorted(b.imports.items(), key=lambda kv: (kv[1], kv[0]))
        if name not in used and not path.endswith("__init__.py")
    ]
    if "*" not in b.bound:
        reported = set()
        for name, line in b.loaded:
            if name not in b.bound and name not in BUILTINS and name not in reported:
                reported.add(name)
                out.append(finding(path, line, "F821", "error", f"undefined name '{name}'"))
    return out


def comments(source: str) -> list[tuple[int, str]]:
    """(line, text) of every Python comment; [] when the source does not tokenize."""
    try:
        tokens = tokenize.generate_tokens(io.StringIO(source).readline)
        return [(t.start[0], t.string) for t in tokens if t.type == tokenize.COMMENT]
    except (tokenize.TokenError, SyntaxError):
        return []


def text_checks(path: str, source: str, max_len: int, linters: list[str]) -> list[dict]:
    """TODO markers (todo), line length (style) and secret patterns (any language)."""
    out = []
    is_python = path.endswith(".py")
    todo_lines = comments(source) if is_python else list(enumerate(source.splitlines(), 1))
    for line, text in todo_lines if "todo" in linters else []:
        if match := TODO.search(text):
            msg = f"{match.group(1)} left in code: {text.strip()[:80]}"
            out.append(finding(path, line, "T101", "info", msg))
    for number, text in enumerate(source.splitlines(), 1):
        if "style" in linters and len(text) > max_len:
            msg = f"line too long ({len(text)} > {max_len})"
            out.append(finding(path, number, "E501", "info", msg))
        for code, pattern, what in SECRET_TEXT:
            if pattern.search(text):
                out.append(finding(path, number, code, "error", f"hardcoded {what}"))
    return out


def review_file(path: str, source: str, config: dict, real: dict[str, bool]) -> list[dict]:
    linters = config["linters"]
    out = text_checks(path, source, config["max_line_length"], linters)
    if not path.endswith(".py"):
        return out
    try:
        tree = ast.parse(compile(source, path, "exec", ast.PyCF_ONLY_AST))
    except SyntaxError as exc:
        if "syntax" in linters:
            msg = f"syntax error: {exc.msg}"
            out.append(finding(path, exc.lineno or 1, "E999", "error", msg))
        return out
    if "pyflakes" in linters:
        out += pyflakes_check(path, tree) if real["pyflakes"] else names(path, tree)
    if "mccabe" in linters:
        check = mccabe_check if real["mccabe"] else builtin_mccabe
        out += check(path, tree, config["max_complexity"])
    if "bandit" in linters and not real["bandit"]:
        out += security(path, tree)
    if "style" in linters:
        out += style(path, tree)
    return out


def load_files(config: dict) -> dict[str, str]:
    if "files" in config:
        files = config["files"]
        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            raise ValueError("files must be an object of {path: content}")
        return files
    if "path" in config:
        root = Path(config["path"])
        if not root.is_dir():
            raise ValueError(f"path {root} is not a directory")
        return {
            str(p.relative_to(root)): p.read_text(errors="replace")
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix in SOURCE_SUFFIXES and ".git" not in p.parts
        }
    raise ValueError("give files ({path: content}) or path (a directory) to review")


def llm_review(files: dict[str, str], config: dict) -> str:
    """A free-text review by Claude Code (its CLI when installed, else the Messages API)."""
    model = config.get("model") or os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-5")
    listing = "\n\n".join(f"### {p}\n```\n{c}\n```" for p, c in sorted(files.items()))
    prompt = f"Review this code concisely:\n\n{listing}"
    return claude_code(prompt, model) or call_claude(prompt, model)


def score_of(findings: list[dict]) -> int:
    return max(0, 100 - sum(PENALTY[f["severity"]] for f in findings))


def run(config: dict) -> dict:
    files = load_files(config)
    linters = config.get("linters") or list(ALL_LINTERS)
    unknown = sorted(set(linters) - set(ALL_LINTERS))
    if unknown:
        raise ValueError(f"unknown linters {unknown}: use {', '.join(ALL_LINTERS)}")
    settings = {
        "max_line_length": int(config.get("max_line_length", 100)),
        "max_complexity": int(config.get("max_complexity", 10)),
        "linters": linters,
    }
    min_score = int(config.get("min_score", 70))
    used = analysers()
    real = {name: used[name] == name for name in used}
    findings = [f for path in sorted(files) for f in review_file(path, files[path], settings, real)]
    if "bandit" in linters and real["bandit"]:
        findings += bandit_check({p: c for p, c in files.items() if p.endswith(".py")})
    findings.sort(key=lambda f: (f["file"], f["line"], f["code"]))
    per_file = {}
    for path in sorted(files):
        found = [f for f in findings if f["file"] == path]
        per_file[path] = {"findings": len(found), "score": score_of(found)}
    score = score_of(findings)
    result = {
        "template": "claude_code_reviewer",
        "files_reviewed": len(files),
        "linters": linters,
        "analysers": {k: v for k, v in used.items() if k in linters},
        "claude_code": cli_version("claude"),
        "settings": {**settings, "min_score": min_score},
        "score": score,
        "passed": score >= min_score,
        "summary": {
            "by_severity": dict(sorted(Counter(f["severity"] for f in findings).items())),
            "by_code": dict(sorted(Counter(f["code"] for f in findings).items())),
        },
        "files": per_file,
        "findings": findings,
    }
    if config.get("llm") and os.environ.get("ANTHROPIC_API_KEY"):
        result["llm_review"] = llm_review(files, config)
    return result


if __name__ == "__main__":
    sys.exit(run_main(run, (OSError,), section="claude_code"))
