#!/usr/bin/env python3
"""Mutation testing of the core (not part of CI): small deliberate bugs, one at a time, and whether the tests notice.

    .venv/bin/python tools/mutate.py                 # every target, 2 workers
    .venv/bin/python tools/mutate.py --list          # print the mutants, run nothing
    .venv/bin/python tools/mutate.py --module storm  # only targets whose path contains "storm"

The repository is copied once per worker into a temporary folder (the work tree itself is never written); each
mutant is one changed file in a worker's copy, the target's test files run there with `-x`, and the file is put
back. A failing run or a hang (past the per-mutant timeout) kills the mutant; a passing one lets it survive.

Mutations (made with `ast`, written back with `ast.unparse`): comparisons relaxed and negated, `and`/`or`
swapped, `not` removed, arithmetic and set operators swapped, numbers +1 / -1 / 0, True/False swapped,
`return X` -> `return None`, `min`/`max` swapped, one statement (an assignment, a call, a `del`) removed.
Docstrings, log calls, f-strings (messages), annotations and dataclass fields defaulting to a zero value (the
"unset" of a record) are left alone. KNOWN_EQUIVALENT lists the mutants that cannot change behaviour; they are
shown but not counted.
"""
from __future__ import annotations

import argparse
import ast
import concurrent.futures
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Target:
    """A module to mutate and the test files that must notice. `only`: qualified names (functions, classes,
    `Class.method`, module-level constants) to restrict the mutants to; empty means the whole module."""

    path: str
    tests: tuple[str, ...]
    only: tuple[str, ...] = ()


TARGETS: list[Target] = [
    Target("tray_alerts/lifecycle.py", ("tests/test_lifecycle.py",)),
    Target("tray_alerts/reminders.py", ("tests/test_lifecycle.py",)),
    Target("tray_alerts/routing.py", ("tests/test_lifecycle.py",)),
    Target("tray_alerts/pipeline.py", ("tests/test_pipeline.py",)),
    Target("tray_alerts/storm.py", ("tests/test_pipeline.py",)),
    Target("tray_alerts/outbox.py", ("tests/test_retry.py",),
           only=("RetryPolicy", "answer_for", "expired", "MIN_ATTEMPTS")),
    Target("tray_alerts/clock.py", ("tests/test_clock.py",),
           only=("FakeClock", "JumpDetector", "JUMP_TOLERANCE")),
    Target("tray_alerts/monitors/runner.py", ("tests/test_pinned_engine.py",), only=("MonitorRunner.run_once",)),
    Target("tray_alerts/engine.py", ("tests/test_pinned_engine.py",),
           only=("Engine.close", "Engine.tick", "Engine.write_repeats", "Engine.flush")),
    Target("tray_alerts/background.py", ("tests/test_pinned_engine.py",),
           only=("Background.tick", "Background.pause", "Background._run", "POLL_SECONDS",
                 "REMIND_LOOK_SECONDS")),
    Target("tray_alerts/mirror.py", ("tests/test_pinned_engine.py",),
           only=("Mirror.due_repeats", "Mirror.repeats_written", "Mirror.next_flush", "SEEN_FLUSH_DELAY")),
]

# Mutants that cannot change behaviour, by file:line:column and mutation (as --list prints them), each with its
# reason. Keep this short and honest: a mutant that some input could tell apart is a survivor, not an equivalent.
KNOWN_EQUIVALENT: dict[tuple[str, int, int, str], str] = {
    ("tray_alerts/storm.py", 54, 57, "0.0 -> 1.0"): "the window of a cap that is off: max() with the grouping window"
    " gives the same decisions (a sub-second grouping window only keeps older send times that nothing counts)",
    ("tray_alerts/storm.py", 54, 57, "0.0 -> -1.0"): "the window of a cap that is off: max() with a window >= 0 is"
    " unchanged; with both limits off every alert is sent whatever `sent` keeps",
    ("tray_alerts/storm.py", 54, 107, "0.0 -> 1.0"): "grouping off: max() with the cap's 60 s window is unchanged",
    ("tray_alerts/storm.py", 54, 107, "0.0 -> -1.0"): "grouping off: max() with the cap's 60 s window is unchanged;"
    " with both limits off every alert is sent whatever `sent` keeps",
    ("tray_alerts/storm.py", 57, 67, "`>` -> `>=`"): "on a tie both branches give the same Level",
    ("tray_alerts/storm.py", 112, 73, "`and` -> `or`"): "a gate holds alerts back exactly when it has a summary time"
    " (storm_verdict sets both, summarise clears both), so `held_back or summary_at` selects the same gates",
    ("tray_alerts/clock.py", 47, 21, "1000.0 -> 1001.0"): "the fake monotonic clock's origin: only its differences"
    " are read (waits, jump detection)",
    ("tray_alerts/clock.py", 47, 21, "1000.0 -> 999.0"): "the fake monotonic clock's origin: only differences are read",
    ("tray_alerts/clock.py", 47, 21, "1000.0 -> 0.0"): "the fake monotonic clock's origin: only differences are read",
    ("tray_alerts/clock.py", 67, 12, "remove `self._changed.notify_all()`"): "jump() moves the wall clock only, and"
    " waits are measured on the monotonic one: no waiter can be due because of a jump",
    ("tray_alerts/clock.py", 70, 36, "0.0 -> -1.0"): "max(-1.0, s) differs from max(0.0, s) only for s < 0, where the"
    " deadline is in the past either way and the wait returns at once",
    ("tray_alerts/outbox.py", 51, 44, "0.0 -> -1.0"): "the jittered delay is never negative (jitter is fixed at 0.25,"
    " not configurable), so max() with -1.0 or 0.0 is the same",
    ("tray_alerts/background.py", 69, 54, "0.0 -> -1.0"): "a wait <= 0 means do not wait (Engine._result tests"
    " `wait > 0`)",
    ("tray_alerts/mirror.py", 194, 57, "False -> True"): "the default of `everything` is never used: its only caller"
    " (Engine.write_repeats) always passes it",
}

SKIP_DIRS = {".git", ".venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".hypothesis", ".benchmarks",
             "build", "dist", "node_modules"}
LOGGER_NAMES = {"log", "logger", "logging"}

CMP_SWAPS: dict[type, tuple[type, ...]] = {  # relaxed / tightened, then negated
    ast.Lt: (ast.LtE, ast.GtE), ast.LtE: (ast.Lt, ast.Gt), ast.Gt: (ast.GtE, ast.LtE), ast.GtE: (ast.Gt, ast.Lt),
    ast.Eq: (ast.NotEq,), ast.NotEq: (ast.Eq,), ast.In: (ast.NotIn,), ast.NotIn: (ast.In,),
    ast.Is: (ast.IsNot,), ast.IsNot: (ast.Is,),
}
BIN_SWAPS: dict[type, tuple[type, ...]] = {
    ast.Add: (ast.Sub,), ast.Sub: (ast.Add,), ast.Mult: (ast.Div,), ast.Div: (ast.Mult,), ast.FloorDiv: (ast.Mult,),
    ast.Mod: (ast.Mult,), ast.Pow: (ast.Mult,),
    ast.BitOr: (ast.Sub, ast.BitAnd), ast.BitAnd: (ast.BitOr,),  # set union / difference / intersection
}
SYMBOL: dict[type, str] = {
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.In: "in",
    ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not", ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/",
    ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**", ast.BitOr: "|", ast.BitAnd: "&", ast.And: "and", ast.Or: "or",
}
REMOVABLE = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Delete)


@dataclass
class Mutant:
    target: Target
    index: int  # position among the target's mutants (the same on every parse of the same source)
    line: int
    col: int
    description: str
    source: str = ""  # the mutated module
    status: str = ""  # killed, survived, timeout, equivalent
    seconds: float = 0.0

    @property
    def where(self) -> str:
        return f"{self.target.path}:{self.line}:{self.col}"

    @property
    def key(self) -> tuple[str, int, int, str]:
        return (self.target.path, self.line, self.col, self.description)


class _Scope(NamedTuple):
    name: str  # qualified name of the class or function the walk is in
    in_function: bool
    wanted: bool  # mutate here (the target's `only` allows it)
    returns_none: bool  # the function is annotated `-> None`
    dataclass: bool = False  # directly in the body of a dataclass


@dataclass
class _Site:
    line: int
    col: int
    description: str
    apply: Callable[[], None] = field(repr=False)


# ---- finding mutation sites ----------------------------------------------------------------------------------


def _is_logging_call(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id in LOGGER_NAMES)


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _short(source: str, node: ast.AST, limit: int = 60) -> str:
    text = (ast.get_source_segment(source, node) or ast.unparse(node)).splitlines()[0].strip()
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _assigned_names(node: ast.stmt) -> set[str]:
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    return {target.id for target in targets if isinstance(target, ast.Name)}


class _Finder:
    """Walks a module in a fixed order and lists every mutation site, each with a closure that applies it to
    this very tree (so a fresh parse + the same index gives the same mutant)."""

    def __init__(self, source: str, only: tuple[str, ...]):
        self.source = source
        self.only = only
        self.sites: list[_Site] = []

    def wanted(self, qualname: str) -> bool:
        return not self.only or any(qualname == name or qualname.startswith(name + ".") for name in self.only)

    def run(self, tree: ast.Module) -> list[_Site]:
        self.body(tree.body, _Scope("", in_function=False, wanted=False, returns_none=False))
        return self.sites

    # statements

    def body(self, statements: list[ast.stmt], scope: _Scope) -> None:
        for position, statement in enumerate(list(statements)):
            if position == 0 and _is_docstring(statement):
                continue
            self.statement(statements, statement, scope)

    def statement(self, parent: list[ast.stmt], node: ast.stmt, scope: _Scope) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            qualname = f"{scope.name}.{node.name}" if scope.name else node.name
            wanted = scope.wanted or self.wanted(qualname)
            if isinstance(node, ast.ClassDef):
                is_dataclass = any("dataclass" in ast.unparse(decorator) for decorator in node.decorator_list)
                self.body(node.body, _Scope(qualname, False, wanted, False, is_dataclass))
                return
            if wanted:
                for default in [*node.args.defaults, *node.args.kw_defaults]:
                    if default is not None:
                        self.expression(default)
            returns_none = (isinstance(node.returns, ast.Constant) and node.returns.value is None) or (
                isinstance(node.returns, ast.Name) and node.returns.id == "None")
            self.body(node.body, _Scope(qualname, True, wanted, returns_none))
            return
        if not scope.wanted and not scope.name and isinstance(node, (ast.Assign, ast.AnnAssign)):
            if any(self.wanted(name) for name in _assigned_names(node)):  # a module-level constant
                scope = scope._replace(wanted=True)
        if not scope.wanted:
            return
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.Global, ast.Nonlocal, ast.Pass)):
            return
        if isinstance(node, ast.Expr) and (_is_logging_call(node.value) or isinstance(node.value, ast.Constant)):
            return
        if (scope.dataclass and isinstance(node, ast.AnnAssign) and isinstance(node.value, ast.Constant)
                and not node.value.value):
            return  # a record field defaulting to its zero value: "unset", not a number the code relies on
        if scope.in_function and isinstance(node, REMOVABLE) and not (
                isinstance(node, ast.AnnAssign) and node.value is None):
            self.remove_statement(parent, node)
        if (isinstance(node, ast.Return) and node.value is not None and not scope.returns_none
                and not (isinstance(node.value, ast.Constant) and node.value.value is None)):
            self.return_none(node)
        # the parts of the statement, in field order
        for name, value in ast.iter_fields(node):
            if name in ("annotation", "returns", "type_comment"):
                continue
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and name in ("target", "targets"):
                continue
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                self.body(value, scope)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.expr):
                        self.expression(item)
                    elif isinstance(item, ast.ExceptHandler):
                        self.body(item.body, scope)
                    elif isinstance(item, ast.withitem):
                        self.expression(item.context_expr)
                    elif isinstance(item, ast.match_case):
                        self.body(item.body, scope)
            elif isinstance(value, ast.expr):
                self.expression(value)

    def add(self, node: ast.expr | ast.stmt, description: str, apply: Callable[[], None],
            col: int | None = None) -> None:
        self.sites.append(_Site(node.lineno, node.col_offset if col is None else col, description, apply))

    def remove_statement(self, parent: list[ast.stmt], node: ast.stmt) -> None:
        def apply() -> None:
            parent[parent.index(node)] = ast.copy_location(ast.Pass(), node)
        self.add(node, f"remove `{_short(self.source, node)}`", apply)

    def return_none(self, node: ast.Return) -> None:
        def apply() -> None:
            node.value = ast.Constant(None)
        assert node.value is not None
        self.add(node, f"`return {_short(self.source, node.value, 40)}` -> `return None`", apply)

    # expressions

    def expression(self, node: ast.expr) -> None:
        if isinstance(node, ast.JoinedStr) or _is_logging_call(node):
            return  # messages and log lines
        if isinstance(node, ast.Compare):
            for position, op in enumerate(node.ops):
                for new in CMP_SWAPS.get(type(op), ()):  # placed at the right operand: chains stay apart
                    self.add(node, f"`{SYMBOL[type(op)]}` -> `{SYMBOL[new]}`", self._set_cmp(node, position, new),
                             node.comparators[position].col_offset)
        elif isinstance(node, ast.BoolOp):
            new = ast.Or if isinstance(node.op, ast.And) else ast.And
            self.add(node, f"`{SYMBOL[type(node.op)]}` -> `{SYMBOL[new]}`", self._set_attr(node, "op", new))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            self.add(node, f"remove `not` in `{_short(self.source, node)}`", self._unwrap_not(node))
        elif isinstance(node, ast.BinOp):
            for new in BIN_SWAPS.get(type(node.op), ()):
                self.add(node, f"`{SYMBOL[type(node.op)]}` -> `{SYMBOL[new]}`", self._set_attr(node, "op", new),
                         node.right.col_offset)
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            self.add(node, f"{node.value} -> {not node.value}", self._set_value(node, not node.value))
        elif isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            value = node.value
            for changed in dict.fromkeys((value + 1, value - 1, type(value)(0))):
                if changed != value:
                    self.add(node, f"{value!r} -> {changed!r}", self._set_value(node, changed))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("min", "max"):
            new_name = "max" if node.func.id == "min" else "min"
            self.add(node, f"`{node.func.id}` -> `{new_name}`", self._set_attr(node.func, "id", new_name))
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.expression(child)
            elif isinstance(child, ast.keyword):
                self.expression(child.value)
            elif isinstance(child, ast.comprehension):
                for part in (child.iter, *child.ifs):
                    self.expression(part)

    @staticmethod
    def _set_cmp(node: ast.Compare, position: int, new: type) -> Callable[[], None]:
        def apply() -> None:
            node.ops[position] = new()
        return apply

    @staticmethod
    def _set_attr(node: ast.AST, name: str, new: object) -> Callable[[], None]:
        def apply() -> None:
            setattr(node, name, new() if isinstance(new, type) else new)
        return apply

    @staticmethod
    def _set_value(node: ast.Constant, new: object) -> Callable[[], None]:
        def apply() -> None:
            node.value = new  # type: ignore[assignment]
        return apply

    def _unwrap_not(self, node: ast.UnaryOp) -> Callable[[], None]:
        def apply() -> None:  # `not x` -> `x`
            _replace_in_parent(self._tree, node, node.operand)
        return apply

    _tree: ast.Module


def _replace_in_parent(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, name, new)
                return
            if isinstance(value, list):
                for position, item in enumerate(value):
                    if item is old:
                        value[position] = new
                        return
    raise LookupError("node not found in its tree")


def _sites(source: str, target: Target) -> tuple[ast.Module, list[_Site]]:
    tree = ast.parse(source)
    finder = _Finder(source, target.only)
    finder._tree = tree
    return tree, finder.run(tree)


def mutants_of(target: Target, source: str) -> list[Mutant]:
    """Every mutant of a target that compiles and differs from the original."""
    original = ast.unparse(ast.parse(source))
    found = []
    _, sites = _sites(source, target)
    for index, site in enumerate(sites):
        tree, fresh = _sites(source, target)
        fresh[index].apply()
        ast.fix_missing_locations(tree)
        mutated = ast.unparse(tree)
        if mutated == original:
            continue
        try:
            compile(mutated, target.path, "exec")
        except SyntaxError:
            continue
        found.append(Mutant(target, index, site.line, site.col, site.description, mutated))
    return found


# ---- running -------------------------------------------------------------------------------------------------


def _copy_tree(source: Path, destination: Path) -> None:
    def ignore(folder: str, names: list[str]) -> set[str]:
        return {name for name in names if name in SKIP_DIRS or name.endswith((".pyc", ".egg-info"))}
    shutil.copytree(source, destination, ignore=ignore, symlinks=True)


_RUNNING: set[subprocess.Popen] = set()  # test runs in progress, ended if the tool is interrupted
_RUNNING_LOCK = threading.Lock()


def _end_running() -> None:
    with _RUNNING_LOCK:
        for process in _RUNNING:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _pytest(python: str, workdir: Path, tests: tuple[str, ...], timeout: float, basetemp: Path
            ) -> tuple[str, float, str]:
    """Run the test files in a worker's copy: ("passed" | "failed" | "timeout", seconds, output tail)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "COV_"))}
    env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(workdir), PYTHONHASHSEED="0")
    command = [python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
               f"--basetemp={basetemp}", *tests]
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True, text=True)
    with _RUNNING_LOCK:
        _RUNNING.add(process)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the test run and whatever it started
        output, _ = process.communicate()
        return "timeout", time.monotonic() - started, output[-2000:]
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(process)
    status = "passed" if process.returncode == 0 else "failed"
    if process.returncode in (4, 5):  # usage error / no tests: the tool's fault, not the mutant's
        status = "error"
    return status, time.monotonic() - started, output[-2000:]


class Worker:
    """One copy of the repository and the mutants it runs, one at a time."""

    def __init__(self, number: int, base: Path, python: str, source: Path):
        self.number = number
        self.dir = base / f"w{number}"
        self.basetemp = base / f"w{number}-tmp"
        self.python = python
        _copy_tree(source, self.dir)

    def check_imports(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(self.dir), PYTHONDONTWRITEBYTECODE="1")
        found = subprocess.run([self.python, "-c", "import tray_alerts; print(tray_alerts.__file__)"], cwd=self.dir,
                               env=env, capture_output=True, text=True, check=True).stdout.strip()
        if not Path(found).resolve().is_relative_to(self.dir.resolve()):
            raise SystemExit(f"worker {self.number} imports tray_alerts from {found}, not from its copy")

    def run(self, mutant: Mutant, timeout: float) -> None:
        path = self.dir / mutant.target.path
        original = path.read_bytes()
        try:
            path.write_text(mutant.source, encoding="utf-8")
            status, mutant.seconds, tail = _pytest(self.python, self.dir, mutant.target.tests, timeout,
                                                   self.basetemp)
        finally:
            path.write_bytes(original)
        if status == "error":
            raise RuntimeError(f"pytest could not run {mutant.target.tests}:\n{tail}")
        mutant.status = {"passed": "survived", "failed": "killed", "timeout": "timeout"}[status]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--module", action="append", default=[], help="only targets whose path contains this")
    parser.add_argument("--list", action="store_true", help="list the mutants and run nothing")
    parser.add_argument("--jobs", type=int, default=2, help="worker copies run in parallel (default 2)")
    venv_python = ROOT / ".venv" / "bin" / "python"
    parser.add_argument("--python", default=str(venv_python if venv_python.exists() else sys.executable),
                        help="the python that runs the tests (default: the project's .venv)")
    parser.add_argument("--timeout-factor", type=float, default=4.0,
                        help="a mutant's timeout: this many times its tests' clean run, plus 5 s")
    parser.add_argument("--quiet", action="store_true", help="no line per mutant")
    args = parser.parse_args(argv)

    targets = [t for t in TARGETS if not args.module or any(m in t.path for m in args.module)]
    missing = [t.path for t in targets if not (ROOT / t.path).exists()]
    if missing:
        raise SystemExit(f"targets not found (re-list the package and update TARGETS): {', '.join(missing)}")
    if args.list:
        mutants = find_mutants(targets, ROOT)
        for mutant in mutants:
            flag = " [equivalent]" if mutant.status == "equivalent" else ""
            print(f"{mutant.where}: {mutant.description}{flag}")
        print(f"{len(mutants)} mutants")
        return 0

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tray-alerts-mutate-") as folder:
        base = Path(folder)
        # one snapshot of the work tree (someone may be editing it): the mutants and every worker come from it
        workers = [Worker(0, base, args.python, ROOT)]
        workers += [Worker(number, base, args.python, workers[0].dir) for number in range(1, max(1, args.jobs))]
        for worker in workers:
            worker.check_imports()
        mutants = find_mutants(targets, workers[0].dir)
        try:
            run_all(args, targets, mutants, workers)
        except BaseException:
            _end_running()
            raise
    report(targets, mutants, time.monotonic() - started)
    return 0


def find_mutants(targets: list[Target], root: Path) -> list[Mutant]:
    """The targets' mutants in the tree at `root`, known equivalents marked."""
    mutants: list[Mutant] = []
    for target in targets:
        mutants.extend(mutants_of(target, (root / target.path).read_text(encoding="utf-8")))
    used = set()
    for mutant in mutants:
        if mutant.key in KNOWN_EQUIVALENT:
            mutant.status = "equivalent"
            used.add(mutant.key)
    for key in set(KNOWN_EQUIVALENT) - used:
        if any(target.path == key[0] for target in targets):
            print(f"warning: known-equivalent entry matches no mutant (stale?): {key[0]}:{key[1]}:{key[2]} {key[3]}",
                  file=sys.stderr)
    keys = [mutant.key for mutant in mutants]
    if len(set(keys)) != len(keys):
        print("warning: some mutants share a file:line:column and description", file=sys.stderr)
    return mutants


def run_all(args: argparse.Namespace, targets: list[Target], mutants: list[Mutant], workers: list[Worker]) -> None:
    # clean runs: every target's tests must pass unmutated; they also set the per-mutant timeout
    timeouts: dict[tuple[str, ...], float] = {}
    for tests in dict.fromkeys(t.tests for t in targets):
        status, seconds, tail = _pytest(args.python, workers[0].dir, tests, 600, workers[0].basetemp)
        if status != "passed":
            print(tail)
            raise SystemExit(f"the unmutated tests fail: {' '.join(tests)}")
        timeouts[tests] = args.timeout_factor * seconds + 5.0
        print(f"clean run of {' '.join(tests)}: {seconds:.1f} s (mutant timeout {timeouts[tests]:.0f} s)",
              file=sys.stderr)
    todo: queue.Queue[Mutant] = queue.Queue()
    pending = [m for m in mutants if m.status != "equivalent"]
    for mutant in pending:
        todo.put(mutant)
    done = [0]
    lock = threading.Lock()

    def drain(worker: Worker) -> None:
        while True:
            try:
                mutant = todo.get_nowait()
            except queue.Empty:
                return
            worker.run(mutant, timeouts[mutant.target.tests])
            with lock:
                done[0] += 1
                if not args.quiet:
                    print(f"[{done[0]}/{len(pending)}] {mutant.status:8} {mutant.where}: {mutant.description}"
                          f" ({mutant.seconds:.1f} s)", file=sys.stderr, flush=True)

    with concurrent.futures.ThreadPoolExecutor(len(workers)) as pool:
        for future in [pool.submit(drain, worker) for worker in workers]:
            future.result()


def report(targets: list[Target], mutants: list[Mutant], elapsed: float) -> None:
    total = killed_total = equivalent_total = 0
    print()
    for target in targets:
        mine = [m for m in mutants if m.target is target]
        killed = [m for m in mine if m.status in ("killed", "timeout")]
        survived = [m for m in mine if m.status == "survived"]
        equivalent = [m for m in mine if m.status == "equivalent"]
        counted = len(mine) - len(equivalent)
        rate = 100.0 * len(killed) / counted if counted else 100.0
        timeouts = sum(1 for m in killed if m.status == "timeout")
        print(f"{target.path}: {len(mine)} mutants, {len(killed)} killed ({timeouts} by timeout),"
              f" {len(survived)} survived, {len(equivalent)} known-equivalent — {rate:.1f}%")
        for mutant in survived:
            print(f"    SURVIVED {mutant.where}: {mutant.description}")
        for mutant in equivalent:
            reason = KNOWN_EQUIVALENT[mutant.key]
            print(f"    equivalent {mutant.where}: {mutant.description} — {reason}")
        total += counted
        killed_total += len(killed)
        equivalent_total += len(equivalent)
    rate = 100.0 * killed_total / total if total else 100.0
    print(f"\nTOTAL: {total + equivalent_total} mutants ({equivalent_total} known-equivalent, not counted),"
          f" {killed_total} of {total} killed — kill rate {rate:.1f}%; run time {elapsed / 60:.1f} min")


if __name__ == "__main__":
    sys.exit(main())
