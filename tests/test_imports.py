"""Imports run one way: no cycle among tracker's modules (lazy imports inside functions included), and the
library imports neither train, the lab tools nor its own benchmark command."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# `python -m` commands (tracker.eval's, under the names the docs use): they import the library, never the reverse
COMMANDS = {"tracker.bench", "tracker.evaluate", "tracker.eval.bench", "tracker.eval.evaluate"}
EVAL = "tracker.eval"  # the measuring package: benchmarks, metrics, plots, peers


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function, as absolute names."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            if node.module:  # `from . import plots` imports the module plots, not the package again
                found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in (ROOT / "tracker").rglob("*.py")}
    return {name: {m for m in imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_no_import_cycle_in_the_library():
    edges = graph()
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for dep in sorted(edges[name]):
            assert state.get(dep) != "open", "import cycle: " + " -> ".join([*path, dep])
            if dep not in state:
                visit(dep, [*path, dep])
        state[name] = "done"

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])


def test_library_imports_no_tool_training_or_command():
    for name, deps in graph().items():
        if name not in COMMANDS:
            assert not deps & COMMANDS, f"{name} imports {deps & COMMANDS}"
    for path in (ROOT / "tracker").rglob("*.py"):
        roots = {m.split(".")[0] for m in imports(path)}
        assert not roots & {"train", "tools", "scripts", "tests"}, path


def test_library_imports_nothing_of_the_measuring_package():
    """tracker.eval measures the library; the library (the commands' two entry points aside) never needs it."""
    for name, deps in graph().items():
        if name in COMMANDS or name == EVAL or name.startswith(EVAL + "."):
            continue
        bad = {d for d in deps if d == EVAL or d.startswith(EVAL + ".")}
        assert not bad, f"{name} imports {sorted(bad)}"


def test_lab_tools_use_the_library_as_it_is():
    """tools/ run the library as users do: no patched internals, no test file loaded as a module."""
    for path in (ROOT / "tools").glob("*.py"):
        names = imports(path)
        assert not {"unittest.mock", "mock"} & names, f"{path.name} patches the library"
        assert "importlib.util" not in names and "tests" not in {n.split(".")[0] for n in names}, path.name
        assert "tracker.tracker" not in names, f"{path.name} reaches into tracker.tracker"


def _imports_of(folder: str) -> dict[Path, set[str]]:
    return {p: imports(p) for p in (ROOT / folder).rglob("*.py")}


def test_runtime_layer_imports_no_command():
    """Backends run exported graphs; the commands (track-export, track, evaluate, bench) sit above them."""
    commands = {"tracker.export", "tracker.cli", *COMMANDS}
    for path, deps in _imports_of("tracker/backends").items():
        bad = {d for d in deps if any(d == c or d.startswith(c + ".") for c in commands)}
        assert not bad, f"{path.relative_to(ROOT)} imports the command module(s) {sorted(bad)}"


def test_training_imports_no_backend():
    """Training builds and saves models; running them is the backends' business (the CPU probe is tracker.machine)."""
    for path, deps in _imports_of("train").items():
        bad = {d for d in deps if d == "tracker.backends" or d.startswith("tracker.backends.")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_tools_use_no_private_name_of_the_package():
    """Lab tools go through public or documented names: no ``_name`` imported from, or reached into, tracker."""
    for path in (ROOT / "tools").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tracker"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name} imports {private} from {node.module}"
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                raise AssertionError(f"{path.name}:{node.lineno} reaches into .{node.attr}")
