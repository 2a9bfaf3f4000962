"""The house's layout rules, checked on the source: Qt only in ui/, no import cycles, small folders and
modules, and dependencies that point one way between the concern folders."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "medcal_gui"
MAX_MODULES = 12  # per folder, one module per subcommand excepted (cli/commands)
MAX_LINES = 500
# Lower layers first: a folder may import its own layer and the layers before it, never a later one.
LAYERS = [
    {"core"},
    {"dataset"},
    {"llama"},
    {"modelfile", "convert", "calibrate", "quantize", "evaluate", "chat", "behaviour"},
    {"workflows"},
    {"cli", "ui"},
]


def _modules() -> dict[str, Path]:
    out = {}
    for f in PKG.rglob("*.py"):
        rel = f.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None
    for i, names in enumerate(LAYERS):
        if parts[1] in names:
            return i
    return None


def test_nothing_outside_ui_imports_qt() -> None:
    offenders = [m for m, f in _modules().items() if not m.startswith("medcal_gui.ui")
                 and any(i.split(".")[0] in ("PySide6", "shiboken6") for i in _imports(f, top_level_only=False))]
    assert offenders == []


def test_no_import_cycles_between_modules() -> None:
    mods = _modules()
    graph = {m: {i for i in _imports(f, top_level_only=True) if i in mods and i != m} for m, f in mods.items()}
    # a package's __init__ is imported on the way to its modules: that edge is not a cycle of ours
    seen: set[str] = set()
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        seen.add(m)
        stack.append(m)
        on_stack.add(m)
        for n in graph[m]:
            if n in on_stack:
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in seen:
                visit(n)
        stack.pop()
        on_stack.discard(m)

    for m in sorted(graph):
        if m not in seen:
            visit(m)
    assert cycles == []


def test_dependencies_point_one_way() -> None:
    wrong = []
    for m, f in _modules().items():
        here = _layer(m)
        if here is None:
            continue
        for i in _imports(f, top_level_only=False):
            there = _layer(i) if i.startswith("medcal_gui.") else None
            if there is not None and there > here:
                wrong.append(f"{m} -> {i}")
    assert wrong == []


def test_folders_hold_at_most_a_dozen_modules_and_modules_stay_small() -> None:
    crowded = {}
    for d in [PKG, *[p for p in PKG.rglob("*") if p.is_dir() and p.name != "__pycache__"]]:
        n = len([f for f in d.glob("*.py") if f.name != "__init__.py"])
        if n > MAX_MODULES and d.relative_to(PKG).as_posix() != "cli/commands":
            crowded[d.relative_to(PKG).as_posix()] = n
    assert crowded == {}
    long = {f.relative_to(PKG).as_posix(): n for f in PKG.rglob("*.py")
            if (n := len(f.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_every_folder_is_a_package_with_a_docstring() -> None:
    for d in [p for p in PKG.rglob("*") if p.is_dir() and p.name != "__pycache__"]:
        init = d / "__init__.py"
        assert init.is_file(), d
        assert ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))), init
