"""The house's layout rules, checked on the source (docs/architecture.md draws the same picture).

Every import counts: at module level, inside functions and under `TYPE_CHECKING` alike (the whole syntax tree
is walked), since a function-level import is as much a dependency as one at the top.

- The domain packages are ordered in `LAYERS`, lowest first. A package imports itself and the packages listed
  before it, never one listed after it; within a layer the packages are listed in their order too, so the
  engine rooms import each other only downwards (quantize may use calibrate's imatrix files, never the reverse).
- No import cycle between packages, and none between modules.
- Nothing outside `ui/` imports Qt; nothing outside `llama/` touches ctypes (`import ctypes` or
  `llama_cpp.ctypes`), except what `CTYPES_ELSEWHERE` names with its reason.
- Size is a prompt to look, not a number to land under: a folder over `LOOK_MODULES` modules or a file over
  `LOOK_LINES` lines is reported as a `LayoutWarning` (pytest's warnings summary); only the ceilings
  `MAX_MODULES` and `MAX_LINES`, far past anything a reader can hold, fail.
"""

from __future__ import annotations

import ast
import functools
import warnings
from collections.abc import Iterable
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "medcal_gui"

# Lowest first; a package may import only itself and the packages before it (read the list flat).
LAYERS: list[tuple[str, ...]] = [
    ("core",),  # errors, the job protocol, safe file writes, units, resources
    ("dataset",),  # records, formatting, reading, validation, export
    ("llama", "gguf_files"),  # the edge: llama.cpp through ctypes; GGUF files read without it
    ("budget",),  # the memory and disk a step needs, checked by the rooms before they start
    ("calibrate", "quantize", "evaluate", "chat", "behaviour", "convert", "inspection"),  # the engine rooms
    ("workflows",),  # steps chained for a user
    ("presenters",),  # Qt-free facts and HTML for the window's panes
    ("ui",),  # the window: the only Qt
    ("cli",),  # the command line (it starts the window, and borrows Qt from ui/ for PDF and the self-test)
]
ORDER = [p for layer in LAYERS for p in layer]
# Outside the order: the package itself (its __init__ holds __version__, importable from anywhere) and
# `python -m medcal_gui`, which only starts the command line.
ROOT, MAIN = "", "__main__"

# ctypes outside llama/: module -> why it cannot go through llama/ (libc's calls are in llama/libc.py, the
# buffers handed to llama_cpp's bindings in llama/context.py). Empty, and the test keeps it exact.
CTYPES_ELSEWHERE: dict[str, str] = {}

LOOK_MODULES, MAX_MODULES = 12, 20  # per folder; cli/commands (one module per subcommand) excepted
LOOK_LINES, MAX_LINES = 500, 800  # per file


class LayoutWarning(UserWarning):
    """Worth a look: a crowded folder or a long file."""


@functools.cache
def _modules() -> dict[str, Path]:
    out = {}
    for f in sorted(PKG.rglob("*.py")):
        parts = list(f.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


@functools.cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _imported(module: str, path: Path) -> set[str]:
    """Every module `module` imports, anywhere in the file: `import a.b` gives a.b; `from a import b` gives
    a.b where that is a module, else a (b is a name in it); relative imports resolved."""
    mods = _modules()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                base = package.split(".")
                source = ".".join(base[:len(base) - node.level + 1] + ([source] if source else []))
            found |= {f"{source}.{a.name}" if f"{source}.{a.name}" in mods else source for a in node.names}
    return found


@functools.cache
def _graph() -> dict[str, frozenset[str]]:
    """Module -> the medcal_gui modules it imports (a name in a module counts as that module)."""
    mods = _modules()
    graph = {}
    for m, f in mods.items():
        targets = set()
        for name in _imported(m, f):
            if name == "medcal_gui" or name.startswith("medcal_gui."):
                while name not in mods:
                    name = name.rpartition(".")[0]
                targets.add(name)
        graph[m] = frozenset(targets - {m})
    return graph


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def _cycles(graph: dict[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_package_has_a_place_in_the_order() -> None:
    packages = {_package(m) for m in _modules()} - {ROOT, MAIN}
    assert sorted(packages - set(ORDER)) == [], "add the new package to LAYERS (and docs/architecture.md)"
    assert sorted(set(ORDER) - packages) == [], "a package in LAYERS no longer exists"


def test_no_import_cycle_between_modules() -> None:
    assert _cycles(dict(_graph())) == []


def test_no_import_cycle_between_packages() -> None:
    packages: dict[str, set[str]] = {}
    for m, targets in _graph().items():
        packages.setdefault(_package(m), set()).update(_package(t) for t in targets if _package(t) != _package(m))
    assert _cycles(packages) == []


def test_imports_point_down_the_layers() -> None:
    rank = {p: i for i, p in enumerate(ORDER)} | {ROOT: -1, MAIN: len(ORDER)}
    upward = sorted(f"{m} -> {t}" for m, targets in _graph().items() for t in targets
                    if rank.get(_package(t), len(ORDER)) > rank.get(_package(m), -1))
    assert upward == []


def test_nothing_outside_ui_imports_qt() -> None:
    offenders = [m for m, f in _modules().items() if _package(m) != "ui"
                 and any(i.split(".")[0] in ("PySide6", "shiboken6") for i in _imported(m, f))]
    assert offenders == []


def test_ctypes_only_in_llama() -> None:
    def touches_ctypes(m: str, f: Path) -> bool:
        return (any(i.split(".")[0] == "ctypes" for i in _imported(m, f))
                or any(isinstance(n, ast.Attribute) and n.attr == "ctypes" for n in ast.walk(_tree(f))))

    users = {m for m, f in _modules().items() if _package(m) != "llama" and touches_ctypes(m, f)}
    assert sorted(users - CTYPES_ELSEWHERE.keys()) == []
    assert sorted(CTYPES_ELSEWHERE.keys() - users) == [], "no longer uses ctypes: take it off CTYPES_ELSEWHERE"


def test_size_is_a_prompt_to_look_not_a_target() -> None:
    crowded, long = {}, {}
    for d in [PKG, *(p for p in PKG.rglob("*") if p.is_dir() and p.name != "__pycache__")]:
        n = len([f for f in d.glob("*.py") if f.name != "__init__.py"])
        if n > LOOK_MODULES and d.relative_to(PKG).as_posix() != "cli/commands":
            crowded[d.relative_to(PKG).as_posix()] = n
    for f in PKG.rglob("*.py"):
        if (n := len(f.read_text(encoding="utf-8").splitlines())) > LOOK_LINES:
            long[f.relative_to(PKG).as_posix()] = n
    for what, n in sorted(crowded.items()):
        warnings.warn(f"{what}/ holds {n} modules: does it still hold one concern?", LayoutWarning, stacklevel=1)
    for what, n in sorted(long.items()):
        warnings.warn(f"{what} is {n} lines: does it still do one job?", LayoutWarning, stacklevel=1)
    assert {k: n for k, n in crowded.items() if n > MAX_MODULES} == {}
    assert {k: n for k, n in long.items() if n > MAX_LINES} == {}


def test_every_folder_is_a_package_with_a_docstring() -> None:
    for d in [p for p in PKG.rglob("*") if p.is_dir() and p.name != "__pycache__"]:
        init = d / "__init__.py"
        assert init.is_file(), d
        assert ast.get_docstring(_tree(init)), init
