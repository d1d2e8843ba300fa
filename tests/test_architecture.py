"""The house's rules, checked on the source: imports run one way (docs/architecture.md), no
module imports itself round a circle (imports inside functions count, ``TYPE_CHECKING`` ones do
not), and no file grows past 500 lines."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "cryprint"
MAX_LINES = 500

# Each top-level room of the house and its floor: a module may import its own room and rooms
# on lower floors only (docs/architecture.md explains each).
FLOORS = {
    "errors": 0,
    "hub": 0,
    "memory": 0,
    "recipes": 0,
    "_moved": 0,
    "io": 1,
    "progress": 1,
    "threads": 1,
    "data": 2,
    "models": 3,
    "scoring": 4,
    "inference": 5,
    "training": 6,
    "ward": 7,
    "evaluation": 8,
    "packaging": 9,
    "demo": 10,
    "cli": 11,
    "server": 11,
    "__main__": 12,
    "train": 12,  # deprecated entry point (torchrun -m cryprint.train), for one release
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _typing_only(tree: ast.Module) -> set[int]:
    """The ids of the nodes under ``if TYPE_CHECKING:`` (imports for annotations only)."""
    hidden = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            hidden |= {id(inner) for statement in node.body for inner in ast.walk(statement)}
    return hidden


def _targets(name: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = name.split(".") if is_package else name.split(".")[:-1]
    if node.level:
        base = base[: len(base) - node.level + 1]
        prefix = ".".join([*base, *([node.module] if node.module else [])])
    else:
        prefix = node.module or ""
    return [prefix, *(f"{prefix}.{alias.name}" for alias in node.names)]


def import_graph() -> dict[str, set[str]]:
    """Each cryprint module → the cryprint modules it imports (anywhere in it)."""
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in paths}
    for name, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        hidden = _typing_only(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom) or id(node) in hidden:
                continue
            for target in _targets(name, path.name == "__init__.py", node):
                while target and target not in paths:
                    target = target.rpartition(".")[0]
                if target and target not in (name, "cryprint"):
                    graph[name].add(target)
    return graph


def room(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def test_every_room_has_a_floor() -> None:
    rooms = {room(module) for module in import_graph()} - {"cryprint"}
    assert rooms <= set(FLOORS), f"add to FLOORS and docs/architecture.md: {rooms - set(FLOORS)}"


def test_no_import_cycle() -> None:
    try:
        tuple(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError as cycle:
        pytest.fail(f"import cycle: {' -> '.join(cycle.args[1])}")


def test_imports_only_go_down() -> None:
    upward = [
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        for target in targets
        if room(module) != "cryprint" and FLOORS[room(target)] > FLOORS[room(module)]
    ]
    assert not upward, "imports that go up a floor:\n" + "\n".join(sorted(upward))


def test_the_checks_see_a_cycle_and_an_upward_import(tmp_path: Path) -> None:
    """The graph builder finds function-level imports and skips TYPE_CHECKING ones."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from cryprint.cli import main\n"
        "def late():\n    from cryprint.inference.api import CryPrint\n"
    )
    tree = ast.parse(source)
    hidden = _typing_only(tree)
    seen = [
        target
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and id(node) not in hidden
        for target in _targets("cryprint.scoring.x", False, node)
    ]
    assert "cryprint.inference.api" in seen and "cryprint.cli" not in seen
    with pytest.raises(graphlib.CycleError):
        tuple(graphlib.TopologicalSorter({"a": {"b"}, "b": {"a"}}).static_order())


def test_no_file_is_over_500_lines() -> None:
    long = {
        str(path.relative_to(PACKAGE)): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"split these along their seams: {long}"
