"""Claude Code SPARC developer template: Specification, Pseudocode, Architecture, Refinement,
Completion on a task, with generated code whose tests really run.

Input (JSON, argv[1] or stdin):
  task   e.g. "Write a function that returns the n-th Fibonacci number"
  kind   optional; one of KINDS (otherwise detected from the task)
  mode   "dry_run" (deterministic, offline) | "llm" (Anthropic Messages API);
         default "llm" when ANTHROPIC_API_KEY is set, else "dry_run"
Output: one JSON document; errors print {"error": ...} and exit 1.
"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from agent_io import call_claude, claude_code, cli_version, run_main

PHASES = ("specification", "pseudocode", "architecture", "refinement", "completion")

NON_NEGATIVE = """\
    if not isinstance(n, int) or n < 0:
        raise ValueError("n must be a non-negative integer")
"""
# kind: keywords, signature, summary, the refinement's fix (a guard inserted into the draft),
# pseudocode, draft, cases and error cases
KINDS: dict[str, dict] = {
    "fibonacci": {
        "keywords": ("fibonacci", "fib"),
        "signature": "fibonacci(n: int) -> int",
        "summary": "Return the n-th Fibonacci number (fibonacci(0) == 0).",
        "fix": "reject negative n",
        "pseudocode": [
            "if n < 0: fail",
            "a, b = 0, 1",
            "repeat n times: a, b = b, a + b",
            "return a",
        ],
        "draft": """\
def fibonacci(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
""",
        "guard": NON_NEGATIVE,
        "cases": [((0,), 0), ((1,), 1), ((2,), 1), ((10,), 55), ((50,), 12586269025)],
        "errors": [((-1,), "ValueError")],
    },
    "factorial": {
        "keywords": ("factorial",),
        "signature": "factorial(n: int) -> int",
        "summary": "Return n! for a non-negative integer n.",
        "fix": "reject negative n",
        "pseudocode": [
            "if n < 0: fail",
            "result = 1",
            "for k in 2..n: result *= k",
            "return result",
        ],
        "draft": """\
def factorial(n):
    result = 1
    for k in range(2, n + 1):
        result *= k
    return result
""",
        "guard": NON_NEGATIVE,
        "cases": [((0,), 1), ((1,), 1), ((5,), 120), ((20,), 2432902008176640000)],
        "errors": [((-3,), "ValueError")],
    },
    "is_prime": {
        "keywords": ("prime",),
        "signature": "is_prime(n: int) -> bool",
        "summary": "Return whether n is a prime number.",
        "fix": "handle n < 2",
        "pseudocode": [
            "if n < 2: return False",
            "for d in 2..sqrt(n): if d divides n: False",
            "True",
        ],
        "draft": """\
def is_prime(n):
    d = 2
    while d * d <= n:
        if n % d == 0:
            return False
        d += 1
    return True
""",
        "guard": "    if n < 2:\n        return False\n",
        "cases": [((2,), True), ((17,), True), ((21,), False), ((1,), False), ((0,), False)],
        "errors": [],
    },
    "palindrome": {
        "keywords": ("palindrome",),
        "signature": "is_palindrome(text: str) -> bool",
        "summary": "Return whether text reads the same backwards, ignoring case and non-letters.",
        "fix": "normalise case and punctuation",
        "pseudocode": ["keep the alphanumerics of text, lower-cased", "compare with its reverse"],
        "draft": """\
def is_palindrome(text):
    return text == text[::-1]
""",
        "guard": "    text = ''.join(c for c in text.lower() if c.isalnum())\n",
        "cases": [
            (("racecar",), True),
            (("A man, a plan, a canal: Panama",), True),
            (("abc",), False),
        ],
        "errors": [],
    },
    "reverse_string": {
        "keywords": ("reverse",),
        "signature": "reverse_string(text: str) -> str",
        "summary": "Return text reversed.",
        "fix": "reject non-strings",
        "pseudocode": ["if text is not a string: fail", "return the characters in reverse order"],
        "draft": """\
def reverse_string(text):
    return text[::-1]
""",
        "guard": """\
    if not isinstance(text, str):
        raise TypeError("text must be a string")
""",
        "cases": [(("abc",), "cba"), (("",), ""), (("été",), "été")],
        "errors": [(([1, 2],), "TypeError")],
    },
    "fizzbuzz": {
        "keywords": ("fizzbuzz", "fizz"),
        "signature": "fizzbuzz(n: int) -> list[str]",
        "summary": "Return the FizzBuzz sequence from 1 to n.",
        "fix": "reject negative n",
        "pseudocode": [
            "if n < 0: fail",
            "for i in 1..n: Fizz/Buzz/FizzBuzz/str(i) by divisibility",
        ],
        "draft": """\
def fizzbuzz(n):
    return [fizz(i) for i in range(1, n + 1)]


def fizz(i):
    return 'FizzBuzz' if i % 15 == 0 else 'Fizz' if i % 3 == 0 else 'Buzz' if i % 5 == 0 else str(i)
""",
        "guard": NON_NEGATIVE,
        "cases": [((5,), ["1", "2", "Fizz", "4", "Buzz"]), ((0,), [])],
        "errors": [((-1,), "ValueError")],
    },
    "gcd": {
        "keywords": ("gcd", "greatest common divisor"),
        "signature": "gcd(a: int, b: int) -> int",
        "summary": "Return the greatest common divisor of a and b (always non-negative).",
        "fix": "use absolute values",
        "pseudocode": ["while b: a, b = b, a mod b", "return |a|"],
        "draft": """\
def gcd(a, b):
    while b:
        a, b = b, a % b
    return a
""",
        "guard": "    a, b = abs(a), abs(b)\n",
        "cases": [((12, 18), 6), ((17, 5), 1), ((0, 7), 7), ((-12, 18), 6), ((12, -18), 6)],
        "errors": [],
    },
}


def detect(task: str) -> str:
    text = task.lower()
    for kind, spec in KINDS.items():
        if any(re.search(rf"\b{re.escape(k)}", text) for k in spec["keywords"]):
            return kind
    raise ValueError(f"offline mode supports these task kinds: {', '.join(KINDS)}")


def function_name(spec: dict) -> str:
    return spec["signature"].split("(")[0]


def render_tests(spec: dict) -> str:
    """A unittest module for the spec's cases and error cases."""
    name = function_name(spec)
    lines = [
        "import unittest",
        "",
        f"from solution import {name}",
        "",
        "",
        "class TestSolution(unittest.TestCase):",
    ]
    for i, (args, expected) in enumerate(spec["cases"], 1):
        call = f"{name}({', '.join(map(repr, args))})"
        lines += [
            f"    def test_case_{i}(self):",
            f"        self.assertEqual({call}, {expected!r})",
            "",
        ]
    for i, (args, exc) in enumerate(spec["errors"], 1):
        call = f"{name}({', '.join(map(repr, args))})"
        lines += [
            f"    def test_rejects_{i}(self):",
            f"        with self.assertRaises({exc}):",
            f"            {call}",
            "",
        ]
    return "\n".join(lines).rstrip() + '\n\n\nif __name__ == "__main__":\n    unittest.main()\n'


def refine(spec: dict) -> str:
    """The draft with the input guard inserted after the def line."""
    head, body = spec["draft"].split("\n", 1)
    return f"{head}\n{spec['guard']}{body}"


def run_tests(code: str, tests: str) -> dict:
    """Write solution.py and test_solution.py to a temp dir and run unittest in a subprocess."""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "solution.py").write_text(code)
        Path(tmp, "test_solution.py").write_text(tests)
        proc = subprocess.run(
            [sys.executable, "-m", "unittest", "-v", "test_solution"],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
    outcomes = re.findall(r"^(test\w+) \(.*?\) \.\.\. (ok|FAIL|ERROR)", proc.stderr, re.M)
    failed = sorted(name for name, status in outcomes if status != "ok")
    return {
        "exit_code": proc.returncode,
        "tests": len(outcomes),
        "passed": len(outcomes) - len(failed),
        "failed": failed,
    }


def dry_run(task: str, kind: str) -> dict:
    """All five phases, deterministic: the draft's test failures drive one refinement."""
    spec = KINDS[kind]
    tests = render_tests(spec)
    iterations, code = [], spec["draft"]
    for attempt in (1, 2):
        outcome = run_tests(code, tests)
        iterations.append(
            {"iteration": attempt, "change": "draft" if attempt == 1 else spec["fix"], **outcome}
        )
        if outcome["exit_code"] == 0 or attempt == 2:
            break
        code = refine(spec)
    final = iterations[-1]
    return {
        "specification": {
            "task": task,
            "kind": kind,
            "signature": spec["signature"],
            "requirements": [spec["summary"]],
            "acceptance": [
                f"{function_name(spec)}{args!r} == {exp!r}" for args, exp in spec["cases"]
            ]
            + [f"{function_name(spec)}{args!r} raises {exc}" for args, exc in spec["errors"]],
        },
        "pseudocode": spec["pseudocode"],
        "architecture": {
            "modules": {"solution.py": spec["signature"], "test_solution.py": "unittest.TestCase"},
            "dependencies": ["python3 standard library"],
            "test_command": "python3 -m unittest -v test_solution",
        },
        "refinement": {"iterations": iterations},
        "completion": {
            "status": "complete" if final["exit_code"] == 0 else "failed",
            "files": {"solution.py": code, "test_solution.py": tests},
            "tests": {k: final[k] for k in ("tests", "passed", "failed")},
        },
    }


def code_block(text: str, name: str) -> str:
    match = re.search(rf"```python\s+#\s*{re.escape(name)}\n(.*?)```", text, re.S)
    if not match:
        raise ValueError(f"the model's answer has no ```python # {name}``` block")
    return match.group(1)


def ask_claude(prompt: str, model: str, max_tokens: int = 2048) -> str:
    """Claude Code's CLI (installed by the template) or, without it, the Messages API."""
    return claude_code(prompt, model) or call_claude(prompt, model, max_tokens)


def llm(task: str, model: str) -> dict:
    """All five phases through the Anthropic Messages API; the tests it writes are run."""
    notes: dict = {}
    for phase in PHASES[:3]:
        context = "\n\n".join(f"{k}:\n{v}" for k, v in notes.items())
        notes[phase] = ask_claude(f"SPARC {phase} for the task: {task}\n\n{context}", model)
    ask = (
        f"Task: {task}\n\n{notes['architecture']}\n\nWrite the implementation and unittest "
        "tests as two blocks: ```python\n# solution.py\n...``` and "
        "```python\n# test_solution.py\n...```"
    )
    answer = ask_claude(ask, model, 4096)
    code, tests = code_block(answer, "solution.py"), code_block(answer, "test_solution.py")
    outcome = run_tests(code, tests)
    iterations = [{"iteration": 1, "change": "model draft", **outcome}]
    if outcome["exit_code"]:
        answer = ask_claude(
            f"{ask}\n\nYour previous answer failed {outcome['failed']}:\n{answer}", model, 4096
        )
        code, tests = code_block(answer, "solution.py"), code_block(answer, "test_solution.py")
        outcome = run_tests(code, tests)
        iterations.append({"iteration": 2, "change": "model fix", **outcome})
    return {
        **notes,
        "refinement": {"iterations": iterations},
        "completion": {
            "status": "complete" if outcome["exit_code"] == 0 else "failed",
            "files": {"solution.py": code, "test_solution.py": tests},
            "tests": {k: outcome[k] for k in ("tests", "passed", "failed")},
        },
    }


def run(config: dict) -> dict:
    task = config.get("task")
    if not isinstance(task, str) or not task.strip():
        raise ValueError("task (a non-empty string) is required")
    mode = config.get("mode", "llm" if os.environ.get("ANTHROPIC_API_KEY") else "dry_run")
    if mode == "llm":
        model = config.get("model", os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-5"))
        phases = llm(task, model)
    elif mode == "dry_run":
        kind = config.get("kind") or detect(task)
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        phases = dry_run(task, kind)
    else:
        raise ValueError("mode must be dry_run or llm")
    wanted = config.get("phases") or list(PHASES)
    unknown = sorted(set(wanted) - set(PHASES))
    if unknown:
        raise ValueError(f"unknown phases {unknown}: use {', '.join(PHASES)}")
    shown = {k: v for k, v in phases.items() if k in wanted or k == "completion"}
    return {
        "template": "claude_code_sparc",
        "mode": mode,
        "claude_code": cli_version("claude"),
        "phases": wanted,
        **shown,
    }


def completed(result: dict) -> bool:
    return result["completion"]["status"] == "complete"


if __name__ == "__main__":
    sys.exit(
        run_main(
            run,
            (OSError, subprocess.SubprocessError),
            succeeded=completed,
            section="claude_code",
        )
    )
