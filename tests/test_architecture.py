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
    ("pasta.agent", "pasta.ahead", "pasta.align"),
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


WORLD_INTERFACE = {"pasta.worlds", "pasta.worlds.world", "pasta.worlds.prompt_edits"}
"""What the rest of the code may import from pasta.worlds: `load_world`/`load_prompt_task`, the interfaces, and the
prompt-editing helpers shared with the candidate cleaner."""
WORLD_OWN_TOOLS = {"pasta.tools.eval_t2i_emoji"}
"""The emoji world's evaluation reads its world directly until that world has a `PromptTask` (issue 21)."""
KEPT_NAMES = {"--garments"}
"""Strings kept so old command lines still work (`pasta eval align --garments` is `--subjects`)."""


def _code_words(path: Path) -> set[str]:
    """Identifiers and string constants of a module, docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    docstrings |= {  # attribute docstrings: a bare string after an assignment
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }
    words = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            words.add(node.id)
        elif isinstance(node, ast.Attribute):
            words.add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            words.add(node.name)
        elif isinstance(node, ast.arg):
            words.add(node.arg)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            words.add(node.value)
    return words - KEPT_NAMES


def test_only_a_world_knows_what_it_draws():
    """Everything outside pasta/worlds reaches a world through its interfaces, and no code there names garments
    (docstrings may use the default world as an example)."""
    g = graph()
    reaching_in = [
        f"{a} imports {b}"
        for a, deps in g.items()
        if not (a == "pasta.worlds" or a.startswith("pasta.worlds.")) and a not in WORLD_OWN_TOOLS
        for b in deps
        if b.startswith("pasta.worlds.") and b not in WORLD_INTERFACE
    ]
    assert not reaching_in, "\n".join(sorted(reaching_in))
    naming = {
        name: sorted(w for w in _code_words(path) if "garment" in w.lower() or "fashion_mnist" in w.lower())
        for name, path in modules().items()
        if not name.startswith("pasta.worlds")
    }
    assert not {name: words for name, words in naming.items() if words}
