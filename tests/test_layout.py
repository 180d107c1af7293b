"""The package layout is the architecture: imports run one way, no module
imports itself back through another, and functions fit on a screen.

Read from the source with ``ast``, so imports inside functions (the lazy
ones) count as much as those at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

MENTOR = Path(__file__).resolve().parents[1] / "mentor"

# Each part of mentor/ and the floor it sits on: a module may import its own
# part and the parts on lower floors, never a higher one.
FLOORS = {
    "settings": 0,
    "index": 1,
    "ingest": 2,
    "course": 3,
    "generate": 4,
    "engine": 5,
    "cli": 6,
    "web": 6,
    "__main__": 7,
    "__init__": 7,
}
LONGEST_FUNCTION = 60
# A longer function says why on the line above its ``def``.
LONG_REASON = "# Long because"


def modules() -> dict[str, Path]:
    found = {}
    for path in MENTOR.rglob("*.py"):
        parts = path.relative_to(MENTOR.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The mentor modules ``name`` imports, anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # ``from mentor.course import backup`` imports the module mentor.course.backup
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        out |= {t for t in targets if t in known and t != name}
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported(name, path, set(found)) for name, path in found.items()}


def floor(module: str) -> int:
    parts = module.split(".")
    return FLOORS[parts[1]] if len(parts) > 1 else FLOORS["__init__"]


def test_the_graph_is_read():
    # Guards the reading itself: an empty graph would pass every test below.
    edges = graph()
    assert "mentor.course.library" in edges["mentor.engine"]
    assert "mentor.ingest.office" in edges["mentor.ingest.documents"]


def test_imports_run_one_way():
    upward = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        for target in targets
        if floor(target) > floor(module)
    ]
    assert not upward, "a lower part imports a higher one:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    edges = graph()
    cycles = []

    def visit(module: str, trail: list[str]) -> None:
        for target in sorted(edges[module]):
            if target in trail:
                cycles.append(" -> ".join(trail[trail.index(target):] + [target]))
            elif target not in done:
                visit(target, trail + [target])
        done.add(module)

    done: set[str] = set()
    for module in sorted(edges):
        if module not in done:
            visit(module, [module])
    # A package's __init__ re-exporting its own modules is not a cycle.
    cycles = [c for c in cycles if not _within_package(c)]
    assert not cycles, "import cycles:\n" + "\n".join(sorted(set(cycles)))


def _within_package(cycle: str) -> bool:
    names = cycle.split(" -> ")
    return any(all(n == root or n.startswith(root + ".") for n in names) for root in names)


def long_functions() -> list[str]:
    found = []
    for path in MENTOR.rglob("*.py"):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            length = node.end_lineno - first + 1
            reason = lines[first - 2].strip().startswith(LONG_REASON) if first > 1 else False
            if length > LONGEST_FUNCTION and not reason:
                found.append(f"{path.relative_to(MENTOR.parent)}:{node.lineno} {node.name}: {length} lines")
    return found


def test_functions_fit_on_a_screen():
    assert not long_functions(), "functions over 60 lines with no reason above them:\n" + "\n".join(long_functions())


@pytest.mark.parametrize("part", ["ingest", "index", "course", "generate", "web"])
def test_each_part_says_what_it_owns(part):
    doc = ast.get_docstring(ast.parse((MENTOR / part / "__init__.py").read_text()))
    assert doc and "import" in doc, f"mentor/{part}/__init__.py must say what it owns and what it may import"
