"""The package layout holds its shape: no import cycle, no import from a lower layer to a higher one, no module
too long to read in one sitting. Read from the source with `ast`, so function-level imports count too (imports
under `if TYPE_CHECKING:` are annotations only and do not)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 450

LAYERS = [
    (
        "pasta",
        "pasta.config",
        "pasta.console",
        "pasta.contracts",
        "pasta.executors",
        "pasta.paths",
        "pasta.safety",
        "pasta.torch_thread",
    ),
    ("pasta.backends", "pasta.logbook"),
    ("pasta.worlds",),
    ("pasta.candidates",),
    ("pasta.policy",),
    ("pasta.inputs", "pasta.session", "pasta.components"),
    ("pasta.agent", "pasta.align"),
    ("pasta.app", "pasta.tools", "user_sim"),
    ("pasta.cli",),
]
"""Lowest first: a module may import its own layer and those below it. The app, the tools and the simulator sit
on the library; nothing in the library imports them."""


def modules() -> dict[str, Path]:
    out = {}
    for package in ("pasta", "user_sim"):
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    out = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{a.name}" for a in node.names} & known.keys()
            out.update(submodules if len(submodules) == len(node.names) else {node.module, *submodules})
    return {name for name in out if name in known}


def layer(name: str) -> int:
    best = max(
        (prefix for group in LAYERS for prefix in group if name == prefix or name.startswith(prefix + ".")), key=len
    )
    return next(i for i, group in enumerate(LAYERS) if best in group)


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) - {name} for name, path in known.items()}


def test_no_module_imports_a_higher_layer():
    wrong = [
        f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
        for a, deps in graph().items()
        for b in deps
        if layer(b) > layer(a)
    ]
    assert not wrong, "\n".join(sorted(wrong))


def test_there_is_no_import_cycle():
    g = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(g[node]):
            if state.get(dep) == 1:
                cycles.append(" -> ".join(stack[stack.index(dep) :] + [dep]))
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


def test_every_module_fits_on_a_few_screens():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_checks_see_real_imports():
    g = graph()
    assert "pasta.agent" in g["pasta.app.factory"] and "pasta.logbook.schema" in g["pasta.logbook.rows"]
    assert "pasta.logbook.store" not in g["pasta.logbook.transfer"]  # only under TYPE_CHECKING
    assert layer("pasta.app.ui") > layer("pasta.agent") > layer("pasta.policy.iql") > layer("pasta.config")
