"""The shape of the house: minigrad's modules import each other without a circle, none is over ~600 lines,
library code carries no dated measurements (numbers that justify a choice live in docs/benchmarks.md), and no
Numba kernel calls a kernel of another file."""
import ast
import importlib
import re
import types
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "minigrad"
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The minigrad modules `name` imports, wherever the import statement stands (a function-level import is
    still an edge: a lazy import must not hide a circle), except under `if TYPE_CHECKING:`."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    static = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and ast.unparse(block.test) ==
              "TYPE_CHECKING" for n in ast.walk(block)}  # imports for annotations only never run
    for node in ast.walk(tree):
        if id(node) in static:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of `graph`, or None (depth-first search with an explicit stack)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [], [(start, iter(sorted(graph[start])))]
        state[start] = 1
        path.append(start)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                return path[path.index(child):] + [child]
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(graph[child]))))
    return None


def _package_parents(name: str) -> set[str]:
    """Importing a.b.c runs a/__init__ and a/b/__init__: those edges are Python's, not a circle of ours."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def test_no_import_circle():
    modules = _modules()
    known = set(modules)
    graph = {name: _imports(name, path, known) - _package_parents(name) for name, path in modules.items()}
    # a package's __init__ re-exporting its own submodules is the package's face, not a circle
    for name in graph:
        graph[name] = {t for t in graph[name] if not t.startswith(name + ".")}
    assert _cycle(graph) is None, f"import circle: {' -> '.join(_cycle(graph))}"


def test_the_circle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


@pytest.mark.parametrize("name", sorted(_modules()))
def test_no_module_is_over_600_lines(name):
    lines = len(_modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it by idea"


DATED = re.compile(r"\b20\d\d-\d\d(-\d\d)?\b|this session|earlier run|yesterday")


@pytest.mark.parametrize("name", sorted(_modules()))
def test_library_code_carries_no_dated_measurement(name):
    text = _modules()[name].read_text()
    hits = [line.strip() for line in text.splitlines() if DATED.search(line)]
    assert not hits, f"{name}: a date or a session's history in the code (docs/benchmarks.md holds numbers): {hits}"


def _cross_file_kernel_calls(module: types.ModuleType) -> list[str]:
    """The Numba CPU kernels of `module` that call a kernel defined in another module."""
    from numba.core.registry import CPUDispatcher

    found = []
    for name, obj in vars(module).items():
        if isinstance(obj, CPUDispatcher) and obj.py_func.__module__ == module.__name__:
            for ref in obj.py_func.__code__.co_names:
                target = vars(module).get(ref)
                if isinstance(target, CPUDispatcher) and target.py_func.__module__ != module.__name__:
                    found.append(f"{name} -> {target.py_func.__module__}.{ref}")
    return found


@pytest.mark.parametrize("name", sorted(n for n, p in _modules().items() if "@njit" in p.read_text()))
def test_no_kernel_calls_a_kernel_of_another_file(name):
    """Numba checks a kernel's cache against the kernel's own file only, and a kernel compiles the kernels it
    calls into itself: a call into another file would keep a stale copy of the callee when that file changes
    (docs/internals.md). Such calls go through Python."""
    assert _cross_file_kernel_calls(importlib.import_module(name)) == []


def test_the_cross_file_finder_finds_one():
    from numba import njit

    from minigrad.nn._lstm import add_and_clamp

    fake = types.ModuleType("fake_kernels")
    fake.__dict__.update(njit=njit, add_and_clamp=add_and_clamp)
    exec("@njit\ndef own(x):\n    return x\n\n"
         "@njit\ndef step(dh, grad, clip, deltas):\n    own(dh)\n    add_and_clamp(dh, grad, clip, deltas)\n",
         fake.__dict__)
    assert _cross_file_kernel_calls(fake) == ["step -> minigrad.nn._lstm.add_and_clamp"]
