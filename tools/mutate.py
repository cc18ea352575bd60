"""Mutation testing for minigrad: plant one small bug at a time and check that some test fails.

    python tools/mutate.py                 # every target module, 2 workers, report in .mutation/
    python tools/mutate.py --jobs 1 minigrad/clip/numpy_backend.py
    python tools/mutate.py --rerun survived --cap 0   # then: the survivors again, with every test that runs them
    python tools/mutate.py --sample 300    # a random sample of the mutants not run yet: an estimate of the score
    python tools/mutate.py --report        # reprint the last report without running anything

Not in CI: a full run takes hours on a 2-core machine. Results go to ``.mutation/results.jsonl`` as they come,
so an interrupted run resumes where it stopped (``--fresh`` starts over).

Why our own runner and not mutmut 3: mutmut swaps every function for a trampoline that dispatches to the mutant,
and Numba cannot compile a trampoline, so it leaves decorated functions -- every Numba and CUDA kernel -- unmutated.
Here each mutant is a real edit of the source file in a private copy of the working tree, so kernels are
recompiled with the bug in them (the file's other kernels come from Numba's cache, which is keyed on the file;
so no kernel may call a kernel of another file, whose cached copy in the caller a mutant would not reach).

How a mutant is judged:
1. Coverage first (once per source tree): the whole suite runs under ``coverage`` with one context per test, under
   the ``mutation`` Hypothesis profile (derandomized, so a kill is reproducible).
2. A mutant runs only the tests that executed its statement (all of its lines: coverage may credit a statement
   spread over several lines to its first one; for a line inside a compiled kernel, which coverage cannot see,
   the tests that executed any line of the file; for ``distributed.py`` also the MPI tests, whose ranks run in
   subprocesses; module-level lines, class bodies and default values run at import, so any test of the file).
   The tests that killed a mutant in the same function first, then the others, fastest first in each group,
   stopping at the first failure, and at most ``--cap`` seconds of them (their clean run time): a widely used line is
   executed by hundreds of tests, and a survivor would run them all (minutes per mutant).
   Known blind spot: a line that runs once per process (a cached singleton's constructor) is attributed to
   the one test that ran it first, so only that test is chosen; run such a survivor's likely killers by hand.
3. A failing test kills it; so does a crash of the test process (a compiled kernel writing out of bounds), an import
   or collection error whose traceback goes through the mutated file, running past ``3 x`` the tests' clean time +
   60 s, or one test running past ``3 x`` its own clean time + 60 s (both reported as a timeout; 60 s leaves room
   for recompiling the mutated file's kernels). The per-test limit is a SIGALRM inside the test process, raising a
   KeyboardInterrupt (which Hypothesis does not swallow), so it stops a Python loop that never ends (a CUDA kernel
   under the simulator: otherwise minutes per hanging mutant) but not a compiled Numba loop, which only the overall
   limit stops. Any other failure of the test run (pytest's usage errors, a collection error elsewhere) is an
   ``error``: not a kill, run again by the next plain run, and the end of its output is kept in the results.
   A mutant no test executes survives as ``uncovered``.
4. Survivors of the capped pass are run again with all their tests: ``--rerun survived --cap 0``. Only what
   survives that counts as surviving.

Mutation operators (each is one edit, chosen to be a plausible slip, never a syntax error):
arithmetic ``+ -``, ``* /``, ``// /``, ``** *``, ``& |``; augmented assignment op swaps and ``x op= y -> x = y``;
comparison boundaries ``< <=``, ``> >=``, ``== !=``, ``is``/``in`` negation; ``and or``; dropping unary ``-`` and
``not``; numbers ``n -> n + 1``; ``True False``; negating ``if``/``while`` conditions; deleting a call statement, an
augmented assignment or a store into an attribute or subscript; ``min max`` (also NumPy's ``minimum maximum``,
``amin amax``, ``nanmin nanmax``); ``float64 float32``; dropping ``.detach() .copy() .clone() .ravel()`` and
``abs() sqrt()``. Not mutated: docstrings, strings, ``raise`` and ``assert`` statements, decorators, annotations,
``warnings.warn`` calls, ``__repr__``, and lines marked ``# pragma: no mutate``.

Mutants known to be equivalent (no test can tell them apart from the original) are listed with a reason in
``tools/mutation_equivalent.txt`` (scope hash, exact lines before and after, reason); the score leaves them
out. An entry whose code changed matches nothing: it is stale, and the run fails until it is re-examined
(``--recheck-equivalents`` runs every listed mutant with all of its tests, expecting each to survive).
"""
import argparse
import ast
import copy
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ["minigrad/clip", "minigrad/nn/rnn.py", "minigrad/nn/_bptt.py", "minigrad/nn/_elman.py",
           "minigrad/nn/_lstm.py", "minigrad/nn/_gru.py", "minigrad/nn/utils", "minigrad/optim", "minigrad/functions",
           "minigrad/_promotion.py", "minigrad/_validation.py", "minigrad/autograd", "minigrad/distributed.py"]
EXTRA_TESTS = {"minigrad/distributed.py": ["tests/test_distributed.py"]}
EQUIVALENT = ROOT / "tools" / "mutation_equivalent.txt"
STATE = ROOT / ".mutation"

BINOP_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
              ast.Pow: ast.Mult, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd, ast.Mod: ast.FloorDiv}
CMP_SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
            ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
NAME_SWAP = {"min": "max", "max": "min", "minimum": "maximum", "maximum": "minimum", "amin": "amax",
             "amax": "amin", "nanmin": "nanmax", "nanmax": "nanmin", "float64": "float32", "float32": "float64"}
DROP_METHOD = {"detach", "copy", "clone", "ravel"}
DROP_FUNC = {"abs", "sqrt"}
COMPILERS = {"njit", "jit", "vectorize", "guvectorize", "stencil"}


# ----------------------------------------------------------------------------------------------------- mutants
def _source_files(paths, root):
    """The .py files of `paths` in the order given, each once (a file named and inside a named folder too)."""
    seen = set()
    for p in paths:
        p = root / p
        for f in sorted(p.rglob("*.py")) if p.is_dir() else [p]:
            if f not in seen:
                seen.add(f)
                yield f


def _is_compiled(func):
    for d in func.decorator_list:
        d = d.func if isinstance(d, ast.Call) else d
        name = d.attr if isinstance(d, ast.Attribute) else getattr(d, "id", "")
        if name in COMPILERS:
            return True
    return False


class _Collector(ast.NodeVisitor):
    """Walks one module and records every mutant as (span, replacement text, description)."""

    def __init__(self, text):
        self.text = text
        self.lines = text.splitlines()
        self.found = []
        self.scope = []        # enclosing def/class names
        self.compiled = False  # inside a Numba/CUDA kernel
        self.stmt = (0, 0)     # the lines of the enclosing statement (a compound statement's header)
        self.at_import = False  # a default value: evaluated when the def runs
        self.defs = []         # the enclosing def/class nodes
        self.anchor = None     # the module- or class-level statement being visited (the scope of its mutants)

    def visit(self, node):
        if isinstance(node, ast.stmt) and (not self.defs or isinstance(self.defs[-1], ast.ClassDef)):
            outer_anchor, self.anchor = self.anchor, node
            try:
                return self._visit_stmt(node)
            finally:
                self.anchor = outer_anchor
        return self._visit_stmt(node)

    def _visit_stmt(self, node):
        if not isinstance(node, ast.stmt) or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return super().visit(node)
        body = getattr(node, "body", None)
        end = max(node.lineno, body[0].lineno - 1) if isinstance(body, list) and body else node.end_lineno
        outer, self.stmt = self.stmt, (node.lineno, end)
        try:
            return super().visit(node)
        finally:
            self.stmt = outer

    # -- bookkeeping
    def _add(self, node, new_text, what):
        line = node.lineno
        if "pragma: no mutate" in self.lines[line - 1]:
            return
        old = ast.get_source_segment(self.text, node)
        class_level = bool(self.defs) and isinstance(self.defs[-1], ast.ClassDef)  # a class body runs at import
        anchor = self.defs[-1] if self.defs and not class_level else self.anchor
        scope_text = ast.get_source_segment(self.text, anchor) if anchor is not None else self.text
        self.found.append(dict(line=line, col=node.col_offset, end_line=node.end_lineno, end_col=node.end_col_offset,
                               old=old, new=new_text, what=what, scope=".".join(self.scope) or "<module>",
                               compiled=self.compiled, stmt=self.stmt, at_import=self.at_import or class_level,
                               scope_sha=hashlib.sha1(scope_text.encode()).hexdigest()[:10]))

    def _expr(self, node, new, what):
        self._add(node, "(" + ast.unparse(new) + ")", what)

    def _scoped(self, node, name):
        self.scope.append(name)
        self.defs.append(node)
        was = self.compiled
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self.compiled = was or _is_compiled(node)
            # decorators, annotations and defaults' annotations are not mutated; defaults and the body are
            # defaults are evaluated once, when the def runs (at import): chosen tests as for module-level lines
            self.at_import = True
            for d in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
                self.visit(d)
            self.at_import = False
            for stmt in node.body:
                self.visit(stmt)
        else:
            for stmt in node.body:
                self.visit(stmt)
        self.scope.pop()
        self.defs.pop()
        self.compiled = was

    def visit_FunctionDef(self, node):
        if node.name == "__repr__":
            return
        self._docstring_skip(node)
        self._scoped(node, node.name)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        self._docstring_skip(node)
        self._scoped(node, node.name)

    def visit_Module(self, node):
        self._docstring_skip(node)
        for stmt in node.body:
            self.visit(stmt)

    def _docstring_skip(self, node):
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:]

    # -- statements never mutated
    def visit_Raise(self, node):
        pass

    def visit_Assert(self, node):
        pass

    def visit_Import(self, node):
        pass

    visit_ImportFrom = visit_Import

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self.visit(node.value)

    def visit_If(self, node):
        t = node.test
        if isinstance(t, ast.Compare) and ast.unparse(t) in ("__name__ == '__main__'", "TYPE_CHECKING"):
            return
        self._expr(t, ast.UnaryOp(ast.Not(), t), "negate condition")
        self.generic_visit(node)

    def visit_While(self, node):
        self._expr(node.test, ast.UnaryOp(ast.Not(), node.test), "negate condition")
        self.generic_visit(node)

    def visit_Expr(self, node):
        v = node.value
        if isinstance(v, ast.Constant):
            return
        if isinstance(v, ast.Call):
            f = ast.unparse(v.func)
            if f.endswith("warn"):
                return
            self._add(node, "pass", "delete call")
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        op = BINOP_SWAP.get(type(node.op))
        if op is not None:
            self._add(node, ast.unparse(ast.AugAssign(node.target, op(), node.value)), "swap operator")
        self._add(node, ast.unparse(ast.Assign([node.target], node.value, lineno=0)), "op= to =")
        self._add(node, "pass", "delete augmented assignment")
        self.visit(node.value)

    def visit_Assign(self, node):
        if any(isinstance(t, (ast.Subscript, ast.Attribute)) for t in node.targets):
            self._add(node, "pass", "delete store")
        if len(self.scope) == 0 and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return
        for t in node.targets:
            if isinstance(t, ast.Subscript):
                self.visit(t.slice)
        self.visit(node.value)

    # -- expressions
    def visit_JoinedStr(self, node):
        pass

    def visit_BinOp(self, node):
        op = BINOP_SWAP.get(type(node.op))
        if op is not None:
            self._expr(node, ast.BinOp(node.left, op(), node.right), "swap operator")
        self.generic_visit(node)

    def visit_Compare(self, node):
        for i, o in enumerate(node.ops):
            swap = CMP_SWAP.get(type(o))
            if swap is not None:
                ops = list(node.ops)
                ops[i] = swap()
                self._expr(node, ast.Compare(node.left, ops, node.comparators), "swap comparison")
        self.generic_visit(node)

    def visit_BoolOp(self, node):
        op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        self._expr(node, ast.BoolOp(op, node.values), "swap and/or")
        self.generic_visit(node)

    def visit_UnaryOp(self, node):
        if isinstance(node.op, (ast.USub, ast.Not)):
            self._expr(node, node.operand, "drop unary")
        self.generic_visit(node)

    def visit_Constant(self, node):
        v = node.value
        if isinstance(v, bool):
            self._add(node, repr(not v), "flip bool")
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            self._add(node, repr(v + 1), "number + 1")

    def visit_Name(self, node):
        if node.id in NAME_SWAP and isinstance(node.ctx, ast.Load):
            self._add(node, NAME_SWAP[node.id], "swap name")

    def visit_Attribute(self, node):
        if node.attr in NAME_SWAP and isinstance(node.ctx, ast.Load):
            new = copy.copy(node)
            new.attr = NAME_SWAP[node.attr]
            self._add(node, ast.unparse(new), "swap name")
        self.generic_visit(node)

    def visit_Call(self, node):
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr in DROP_METHOD and not node.args and not node.keywords:
            self._expr(node, f.value, "drop call")
        name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
        if name in DROP_FUNC and len(node.args) == 1 and not node.keywords:
            self._expr(node, node.args[0], "drop call")
        if name == "warn" or (isinstance(f, ast.Attribute) and f.attr == "switch_context"):
            return
        self.generic_visit(node)


def mutants_of(path, root=ROOT):
    """Every mutant of one file. Its `key` (for the results store) and its `ident` (for the list of equivalents)
    name the scope's text by a hash, so that a key cannot slide onto another mutant when the code around it is
    edited: any edit of the scope (its def, or its module- or class-level statement) makes a new key."""
    rel = str(path.relative_to(root))
    text = path.read_text()
    c = _Collector(text)
    c.visit(ast.parse(text))
    seen, seen_blocks = defaultdict(int), defaultdict(int)
    out = []
    for m in c.found:
        where = f"{rel}:{m['scope']}@{m['scope_sha']}"
        base = f"{where}:{m['old'].splitlines()[0][:60]} -> {m['new'].splitlines()[0][:60]}"
        seen[base] += 1
        old_block, new_block = _blocks(text, m)
        seen_blocks[(where, old_block, new_block)] += 1
        m.update(file=rel, key=f"{base} #{seen[base]}", old_lines=old_block, new_lines=new_block,
                 ident=(where, old_block, new_block, seen_blocks[(where, old_block, new_block)]))
        out.append(m)
    return out


def _blocks(text, m):
    """The source lines the mutant touches, before and after (exact text, indentation included)."""
    lines = text.encode().splitlines()
    first, last = lines[m["line"] - 1], lines[m["end_line"] - 1]
    old = b"\n".join(lines[m["line"] - 1:m["end_line"]]).decode()
    new = (first[:m["col"]] + m["new"].encode() + last[m["end_col"]:]).decode()
    return old, new


def apply(text, m):
    """The source with the mutant's span replaced (AST columns count UTF-8 bytes)."""
    raw = text.encode()
    starts = [0]
    for line in raw.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    a = starts[m["line"] - 1] + m["col"]
    b = starts[m["end_line"] - 1] + m["end_col"]
    return (raw[:a] + m["new"].encode() + raw[b:]).decode()


# ----------------------------------------------------------------------------------------------------- coverage
PLUGIN = '''
import json, os, time
import pytest
_times = {}
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    import coverage
    cov = coverage.Coverage.current()
    if cov is not None:
        cov.switch_context(item.nodeid)
    t = time.perf_counter()
    yield
    _times[item.nodeid] = time.perf_counter() - t
def pytest_sessionfinish(session):
    with open(os.environ["MUTATION_TIMES"], "w") as f:
        json.dump(_times, f)
'''

GUARD = '''
import json, os, signal
import pytest
_limits = json.load(open(os.environ["MUTATION_LIMITS"]))
class MutationHang(KeyboardInterrupt):
    pass
def _hang(signum, frame):
    raise MutationHang("past 3x its clean time + 60 s: taken as a hang")
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    limit = _limits.get(item.nodeid)
    if limit:
        signal.signal(signal.SIGALRM, _hang)
        signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
'''


def _snapshot(dest):
    """The working tree as git sees it (tracked and untracked, not ignored), so edits made while a run goes on
    do not move the mutants."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for f in files:
        src = ROOT / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)


def _env(workdir):
    env = dict(os.environ, PYTHONPATH=str(workdir), HYPOTHESIS_PROFILE="mutation", PYTHONHASHSEED="0",
               NUMBA_CACHE_DIR=str(workdir / ".numba_cache"))
    env.pop("MINIGRAD_REAL_CUDA", None)
    return env


def tree_fingerprint(base):
    import hashlib
    h = hashlib.sha256()
    for f in sorted(base.glob("minigrad/**/*.py")) + sorted(base.glob("tests/**/*.py")):
        if f.name == "mutate.py":  # the runner itself does not change what the suite covers
            continue
        h.update(str(f.relative_to(base)).encode() + f.read_bytes())
    return h.hexdigest()[:16]


def coverage_map(base):
    """{file: {line: [test ids]}} and {test id: seconds}, cached per source tree."""
    cache = STATE / f"coverage-{tree_fingerprint(base)}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    work = Path(tempfile.mkdtemp(prefix="mutcov-"))
    shutil.copytree(base, work, dirs_exist_ok=True)
    (work / "mutation_plugin.py").write_text(PLUGIN)
    env = _env(work)
    env["MUTATION_TIMES"] = str(work / "times.json")
    print("coverage run of the whole suite (once per source tree) ...", flush=True)
    subprocess.run([sys.executable, "-m", "coverage", "run", "--data-file", str(work / ".coverage"), "--source",
                    "minigrad", "-m", "pytest", "tests", "-q", "-p", "mutation_plugin", "-p", "no:cacheprovider",
                    "-x", "--no-header"], cwd=work, env=env, check=True)
    import coverage
    data = coverage.CoverageData(basename=str(work / ".coverage"))
    data.read()
    lines = {}
    for f in data.measured_files():
        rel = str(Path(f).relative_to(work))
        ctx = data.contexts_by_lineno(f)
        lines[rel] = {str(k): sorted(c for c in v if c) for k, v in ctx.items()}
    out = {"lines": lines, "times": json.loads((work / "times.json").read_text())}
    STATE.mkdir(exist_ok=True)
    cache.write_text(json.dumps(out))
    shutil.rmtree(work, ignore_errors=True)
    return out


def _killed_by_a_test(r):
    """The test that killed result `r`, or None (a survivor, or a kill by timeout or import error)."""
    k = r["killer"]
    return k if r["status"] == "killed" and "::" in k and k.startswith("tests/") else None


def killers_by_scope(results):
    """{(file, function): the tests that killed a mutant there}: a neighbour's killer is the likeliest one."""
    out = defaultdict(set)
    for r in results.values():
        if _killed_by_a_test(r):
            out[tuple(r["key"].split(":")[:2])].add(r["killer"])
    return out


def tests_for(m, cov, func_lines, cap, first=frozenset()):
    """The tests that execute the mutant's line: those in `first` (the killers of its neighbours), then the
    rest, each group fastest first; with `cap`, only as many as fit in `cap` seconds of their clean run time
    (and whether that left some out)."""
    lines = cov["lines"].get(m["file"], {})
    picked = set()
    if m["compiled"] or m["scope"] == "<module>" or m.get("at_import"):
        # Coverage cannot see inside a kernel, and a kernel's def line (like the module's level) runs once, at
        # import, inside whichever test imported the file first: the tests of any line of the file it is.
        for v in lines.values():
            picked.update(v)
    else:
        # the lines of the whole statement: coverage may credit a statement spread over several lines to its
        # first line only, so a mutant on a continuation line would otherwise find no tests or too few
        lo, hi = m.get("stmt") or (m["line"], m["end_line"])
        for ln in range(min(lo or m["line"], m["line"]), max(hi, m["end_line"]) + 1):
            picked.update(lines.get(str(ln), []))
        if not picked:
            for ln in func_lines.get((m["file"], m["scope"]), []):
                picked.update(lines.get(str(ln), []))
    for extra in EXTRA_TESTS.get(m["file"], []):
        picked.update(t for t in cov["times"] if t.startswith(extra + "::"))
    ordered = sorted(picked, key=lambda t: (t not in first, cov["times"].get(t, 1.0), t))
    if cap:
        kept, spent = [], 0.0
        for t in ordered:
            spent += cov["times"].get(t, 1.0)
            if kept and spent > cap:
                break
            kept.append(t)
        return kept, len(kept) < len(ordered)
    return ordered, False


def _function_lines(path, root):
    """(file, scope) -> the line numbers of that scope, for mapping kernel lines to their callers' tests."""
    rel = str(path.relative_to(root))
    out = defaultdict(list)

    def walk(node, scope):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                s = scope + [child.name]
                out[(rel, ".".join(s))].extend(range(child.lineno, child.end_lineno + 1))
                walk(child, s)
            else:
                walk(child, scope)
    walk(ast.parse(path.read_text()), [])
    return out


# ----------------------------------------------------------------------------------------------------- running
def verdict(returncode, text, file):
    """(status, killer, detail) of a pytest run of a mutant, from its exit code and output. A crash of the test
    process (a signal, or Python's fatal-error report: a compiled kernel writing out of bounds) is a kill, since
    the suite fails; only an exit that names neither a test nor the mutated file is an error, run again later."""
    killer = ""
    for line in text.splitlines():
        if line.startswith("FAILED") or line.startswith("ERROR"):
            killer = line.split()[1]
            break
    if returncode == 0:
        return "survived", "", ""
    if "MutationHang" in text:
        return "killed", f"timeout ({killer})", ""
    if "::" in killer:
        return "killed", killer, ""
    if returncode < 0 or "Fatal Python error" in text:
        test = re.search(r'File "[^"]*?(tests/[^"]+)", line \d+ in (test\w*)', text)
        return "killed", f"crash ({test.group(1)}::{test.group(2)})" if test else f"crash ({returncode})", ""
    if file in text:  # an import or collection error raised through the mutant also counts
        return "killed", f"collection ({killer or returncode})", ""
    return "error", "", text[-2000:]


def run_one(m, tests, capped, cov, workdir, cap):
    src = workdir / m["file"]
    original = src.read_bytes()
    stat = src.stat()
    src.write_text(apply(original.decode(), m))
    budget = 3 * sum(cov["times"].get(t, 1.0) for t in tests) + 60
    (workdir / "mutation_guard.py").write_text(GUARD)
    limits = workdir / "mutation_limits.json"
    limits.write_text(json.dumps({t: 3 * cov["times"].get(t, 1.0) + 60 for t in tests}))
    env = dict(_env(workdir), MUTATION_LIMITS=str(limits))
    t0 = time.perf_counter()
    detail = ""
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p",
                             "mutation_guard", "--no-header", *tests], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=budget)
        status, killer, detail = verdict(proc.returncode, out.decode(errors="replace"), m["file"])
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        status, killer = "killed", "timeout"
    finally:
        src.write_bytes(original)
        os.utime(src, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # keep Numba's cache of the clean file valid
    return dict(key=m["key"], file=m["file"], line=m["line"], what=m["what"], old=m["old"], new=m["new"],
                status=status, killer=killer, tests=len(tests), capped=capped and status == "survived", tests_cap=cap,
                seconds=round(time.perf_counter() - t0, 1), detail=detail)


HEADER = re.compile(r"^(\S+:\S+@[0-9a-f]{10}) #(\d+)$")


def load_equivalent(path=None):
    """{ident: reason} from the list of equivalent mutants. An entry is a header `file:scope@hash #n`, the exact
    source lines before the mutation (each after "- "), after it ("+ "), and the reason (indented lines); #n
    counts identical edits of identical lines in one scope. Lines starting with # are comments."""
    out, entry = {}, None

    def close():
        if entry is not None:
            ident = (entry[0], "\n".join(entry[2]), "\n".join(entry[3]), entry[1])
            out[ident] = " ".join(entry[4])

    path = path or EQUIVALENT
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        header = HEADER.match(line)
        if header:
            close()
            entry = [header.group(1), int(header.group(2)), [], [], []]
        elif entry is not None and line.startswith("- "):
            entry[2].append(line[2:])
        elif entry is not None and line.startswith("+ "):
            entry[3].append(line[2:])
        elif entry is not None and line.startswith("    "):
            entry[4].append(line.strip())
        elif line.strip() and not line.startswith("#"):
            raise ValueError(f"{path.name}: cannot read the line {line!r}")
    close()
    return out


def format_entry(m, reason):
    """The list entry for mutant `m` (see load_equivalent)."""
    where, old, new, n = m["ident"]
    return "\n".join([f"{where} #{n}"] + [f"- {x}" for x in old.split("\n")] + [f"+ {x}" for x in new.split("\n")]
                     + [f"    {reason}", ""])


def stale_equivalents(mutants, files):
    """Entries for the files in this run that match no mutant: the code changed under them."""
    idents = {m["ident"] for m in mutants}
    return [i for i in load_equivalent() if i not in idents and i[0].split(":")[0] in files]


def report(results, mutants, files, every):
    """Print the score table and the survivors of `mutants`; returns the stale entries of the list of equivalents
    (checked against `every` mutant of the files, of which --only may have picked some)."""
    equivalent = load_equivalent()
    ident_of = {m["key"]: m["ident"] for m in mutants}
    by_file = defaultdict(lambda: defaultdict(int))
    survivors = []
    for r in results.values():
        if r["key"] not in ident_of or r["status"] == "error":  # an error is run again: counted as not run
            continue
        s = r["status"]
        reason = equivalent.get(ident_of[r["key"]])
        if s != "killed" and reason is not None:  # "needs X": not equivalent, but unreachable without X
            s = "untestable" if reason.startswith("needs ") else "equivalent"
        by_file[r["file"]][s] += 1
        if s in ("survived", "uncovered"):
            survivors.append(r)
    tot = defaultdict(int)
    print(f"{'file':44s} {'mutants':>8s} {'killed':>7s} {'equiv':>6s} {'n/a':>4s} {'survived':>9s} {'score':>7s}")
    for f in sorted(by_file):
        c = by_file[f]
        n = sum(c.values())
        for k, v in c.items():
            tot[k] += v
        live = n - c["equivalent"] - c["untestable"]
        print(f"{f:44s} {n:8d} {c['killed']:7d} {c['equivalent']:6d} {c['untestable']:4d} "
              f"{c['survived'] + c['uncovered']:9d} {100 * c['killed'] / max(live, 1):6.1f}%")
    n = sum(tot.values())
    live = n - tot["equivalent"] - tot["untestable"]
    print(f"{'total':44s} {n:8d} {tot['killed']:7d} {tot['equivalent']:6d} {tot['untestable']:4d} "
          f"{tot['survived'] + tot['uncovered']:9d} {100 * tot['killed'] / max(live, 1):6.1f}%")
    not_run = sum(results.get(m["key"], {}).get("status", "error") == "error" for m in mutants)
    print(f"\nmutation score {tot['killed']}/{live} = {100 * tot['killed'] / max(live, 1):.1f}% of non-equivalent "
          f"mutants killed ({tot['equivalent']} equivalent and {tot['untestable']} reachable only with hardware or "
          f"packages this machine lacks (n/a) left out; {not_run} not run yet)")
    if survivors:
        print("\nsurvivors (kill with a test, or list them in tools/mutation_equivalent.txt with a reason):")
        for r in sorted(survivors, key=lambda r: (r["file"], r["line"])):
            tag = r["status"] + (", capped" if r.get("capped") else "")
            print(f"  {r['file']}:{r['line']} [{tag}] {r['key']}")
    stale = stale_equivalents(every, files)
    if stale:
        print(f"\n{len(stale)} entries of tools/mutation_equivalent.txt match no mutant any more (the code under them "
              "changed): re-examine them (--recheck-equivalents runs their closest mutants) and update or remove them")
        for where, old, new, n in sorted(stale):
            print(f"  {where} #{n}: {old.strip()[:60]} -> {new.strip()[:60]}")
    return stale


def recheck_candidates(mutants, files):
    """The mutants the list of equivalents names, and for each stale entry the mutants of the same lines in the
    same scope (its hash and count aside): [(mutant, reason, stale)]."""
    equivalent = load_equivalent()
    by_ident = {m["ident"]: m for m in mutants}
    out = []
    for ident, reason in equivalent.items():
        if ident in by_ident:
            out.append((by_ident[ident], reason, False))
        elif ident[0].split(":")[0] in files:
            scope = ident[0].split("@")[0]
            out.extend((m, reason, True) for m in mutants
                       if m["ident"][0].split("@")[0] == scope and m["ident"][1:3] == ident[1:3])
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="*", default=TARGETS, help="files or folders to mutate (default: %(default)s)")
    ap.add_argument("--jobs", type=int, default=2, help="mutants run in parallel (default: %(default)s)")
    ap.add_argument("--fresh", action="store_true", help="forget earlier results and start over")
    ap.add_argument("--report", action="store_true", help="print the report of earlier results; run nothing")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--only", action="append", default=[],
                    help="run only mutants whose key contains this text (repeat it for any of several)")
    ap.add_argument("--cap", type=float, default=60.0,
                    help="run at most this many seconds (clean run time) of each mutant's tests, fastest first; 0: "
                         "all of them. A survivor of a capped run says so; rerun survivors with --cap 0 "
                         "(default: %(default)s)")
    ap.add_argument("--sample", type=int, default=0,
                    help="run a random sample of this many of the mutants still to run (seeded by --seed), for an "
                         "estimate of the score when there is no time for all of them")
    ap.add_argument("--seed", type=int, default=0, help="seed of --sample (default: %(default)s)")
    ap.add_argument("--recheck-equivalents", action="store_true",
                    help="run every mutant the list of equivalents names (and, for a stale entry, the mutants of the "
                         "same lines in the same scope) with all of its tests, expecting each to survive; writes "
                         ".mutation/equivalent_rechecked.txt with the survivors' current entries")
    ap.add_argument("--rerun", choices=["survived", "all"], default=None,
                    help="run earlier survivors (or everything) again, e.g. after adding tests; mutants never run are "
                         "left for a plain run")
    args = ap.parse_args(argv)

    base = Path(tempfile.mkdtemp(prefix="minigrad-mutation-base-"))
    _snapshot(base)
    files = list(_source_files(args.paths, base))
    mutants = every = [m for f in files for m in mutants_of(f, base)]
    if args.only:
        mutants = [m for m in mutants if any(text in m["key"] for text in args.only)]
    rel_files = {str(f.relative_to(base)) for f in files}
    if args.list or args.report:
        shutil.rmtree(base, ignore_errors=True)
    if args.list:
        for m in mutants:
            print(f"{m['file']}:{m['line']}  {m['what']:28s} {m['key']}")
        print(len(mutants), "mutants")
        return 0
    STATE.mkdir(exist_ok=True)
    store = STATE / "results.jsonl"
    if args.fresh and store.exists():
        store.unlink()
    results = {}
    if store.exists():
        for line in store.read_text().splitlines():
            r = json.loads(line)
            results[r["key"]] = r
    if args.report:
        return 1 if report(results, mutants, rel_files, every) else 0

    cov = coverage_map(base)
    func_lines = {}
    for f in files:
        func_lines.update(_function_lines(f, base))
    recheck = recheck_candidates(mutants, rel_files) if args.recheck_equivalents else []
    if args.recheck_equivalents:  # resumable: a mutant already run with all its tests is not run again
        done_all = {k for k, r in results.items() if r["status"] != "error" and not r.get("capped")
                    and r.get("tests_cap") == 0}
        todo, args.cap = [m for m, _, _ in recheck if m["key"] not in done_all], 0
    elif args.rerun == "all":
        todo = mutants
    elif args.rerun == "survived":
        todo = [m for m in mutants if m["key"] in results and results[m["key"]]["status"] != "killed"]
        todo = [m for m in todo if m["ident"] not in load_equivalent()]
    else:
        todo = [m for m in mutants if m["key"] not in results or results[m["key"]]["status"] == "error"]
    if args.sample and args.sample < len(todo):
        todo = random.Random(args.seed).sample(todo, args.sample)
    print(f"{len(mutants)} mutants in {len(files)} files; {len(todo)} to run on {args.jobs} workers", flush=True)

    killers = killers_by_scope(results)
    workers = []
    for i in range(args.jobs):
        w = Path(tempfile.gettempdir()) / f"minigrad-mutation-{os.getpid()}-{i}"
        shutil.copytree(base, w, dirs_exist_ok=True)
        workers.append(w)
    free = list(workers)
    import threading
    lock = threading.Lock()
    done = [0]

    def job(m):
        with lock:
            first = frozenset(killers.get((m["file"], m["scope"]), ()))
        tests, capped = tests_for(m, cov, func_lines, args.cap, first)
        if not tests:
            r = dict(key=m["key"], file=m["file"], line=m["line"], what=m["what"], old=m["old"], new=m["new"],
                     status="uncovered", killer="", tests=0, capped=False, seconds=0.0, tests_cap=args.cap)
        else:
            with lock:
                w = free.pop()
            try:
                r = run_one(m, tests, capped, cov, w, args.cap)
            finally:
                with lock:
                    free.append(w)
        with lock:
            results[r["key"]] = r
            if _killed_by_a_test(r):
                killers[(m["file"], m["scope"])].add(r["killer"])
            with store.open("a") as f:
                f.write(json.dumps(r) + "\n")
            done[0] += 1
            print(f"[{done[0]}/{len(todo)}] {r['status']:9s} {r['seconds']:6.1f}s {r['file']}:{r['line']} "
                  f"{r['what']}: {r['old'].splitlines()[0][:50]!s} -> {r['new'].splitlines()[0][:50]}", flush=True)

    try:
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(job, todo))
    finally:
        for w in workers + [base]:
            shutil.rmtree(w, ignore_errors=True)
    print()
    if args.recheck_equivalents:
        return _recheck_report(recheck, results)
    return 1 if report(results, mutants, rel_files, every) else 0


def _recheck_report(recheck, results):
    """After --recheck-equivalents: the entries whose mutant was killed (not equivalent: remove them, keep the
    killing test) and the current entries of the survivors, for a reviewer to check and paste."""
    kept, killed = [], []
    for m, reason, stale in recheck:
        r = results[m["key"]]
        (killed if r["status"] == "killed" else kept).append((m, reason, stale, r))
    print(f"re-checked {len(recheck)} mutants: {len(kept)} survived all their tests, {len(killed)} were killed")
    for m, _, stale, r in killed:
        print(f"  killed by {r['killer']}: {m['ident'][0]} #{m['ident'][3]}{' (stale entry)' if stale else ''}: "
              f"{m['old_lines'].strip()[:60]} -> {m['new_lines'].strip()[:60]}")
    out = STATE / "equivalent_rechecked.txt"
    out.write_text("".join(format_entry(m, reason) + "\n" for m, reason, _, _ in kept))
    print(f"the survivors' current entries: {out}")
    return 1 if killed else 0


if __name__ == "__main__":
    sys.exit(main())
