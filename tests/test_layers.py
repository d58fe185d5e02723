"""The house's layers: every import of prunelora's own modules goes downwards, and nothing cycles.

Read statically (with `ast`, nothing is imported): every module under src/prunelora, its imports
at module level and inside functions. The data flow is config -> data + model -> method ->
checkpoint -> evaluation -> report, and the packages are layered the same way: a module may
import a module of a lower layer, or of its own unit (the table's entry it belongs to); two units
of one layer (the methods and the evaluation) never import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import prunelora

SRC = Path(prunelora.__file__).resolve().parent

# Lowest first. A module belongs to the longest entry that is its name or a package above it.
LAYERS: list[tuple[str, ...]] = [
    ("prunelora.errors",),  # what a user can do wrong
    ("prunelora.usercode",),  # the user's own code, run by the layers above: its errors as one line
    # foundations: the standard library and PyYAML (config types, users' factories, YAML presets)
    ("prunelora.typecheck", "prunelora.factories", "prunelora.presets",
     "prunelora.recommend"),  # ... and what our benchmark measured, per model family and forget kind
    ("prunelora.data",),  # datasets, forget specs, the split builder
    ("prunelora.training",),  # the loop: any nn.Module on any Dataset, the recipe, devices
    ("prunelora.models",),  # the registry and the classifier helpers
    ("prunelora.pruning",),
    ("prunelora.adapters",),  # LoRA (peft), on pruned layers too
    ("prunelora.meta_schema",),  # meta.json's schema: the models' declared arguments, the recipe's bounds
    ("prunelora.checkpoint",),  # rebuilds any model above, pruned ones included
    ("prunelora.methods", "prunelora.evaluation"),  # siblings: never import each other
    ("prunelora.api",),  # the workflow: train, unlearn_checkpoint, retrain over the layers below
    ("prunelora.importing",),  # weights trained elsewhere made a checkpoint, as the api's train writes one
    ("prunelora.bench",),  # the orchestrator: api, methods and evaluation over seeds and scenarios
    ("prunelora.cli",),  # the commands
    ("prunelora", "prunelora.__main__"),  # the package's lazy names; `python -m prunelora`
]

# Imports of prunelora's own modules that stay inside a function, each with its reason (start-up
# time only: a cycle is cut, never dodged); a prefix of the imported module covers the modules
# below it. Any other belongs at the module's top.
LOCAL_IMPORTS: dict[tuple[str, str], str] = {
    ("prunelora.cli.app", "prunelora.cli"): "start-up: a command's module (torch, methods, peft...) "
                                            "is imported only when that command is parsed",
    ("prunelora.cli.app", "prunelora.training"): "start-up: torch is not imported for `prunelora --help` "
                                                 "(training.distributed, with its package)",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def unit_of(module: str) -> tuple[int, str]:
    """(layer, unit): the longest table entry naming `module` or a package above it."""
    best = None
    for layer, units in enumerate(LAYERS):
        for unit in units:
            covers = module == unit or (unit != "prunelora" and module.startswith(unit + "."))
            if covers and (best is None or len(unit) > len(best[1])):
                best = (layer, unit)
    assert best is not None, f"{module} is in no layer of LAYERS: add it where it belongs"
    return best


def _targets(node: ast.Import | ast.ImportFrom, importer: str) -> list[str]:
    """The prunelora modules an import statement loads (a name that is a submodule counts as it)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: from the importer's package
            package = importer if MODULES[importer].name == "__init__.py" else importer.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if base else package
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
    names = [n for n in names if n == "prunelora" or n.startswith("prunelora.")]
    # Importing a.b.c runs the __init__ of a.b first: an edge to every package above the imported
    # module, except the importer's own packages (already initialising when the importer runs).
    own = {importer.rsplit(".", k)[0] for k in range(importer.count(".") + 1)}
    parents = [p for n in names for p in (n.rsplit(".", k)[0] for k in range(1, n.count(".")))
               if p in MODULES and p not in own]
    return list(dict.fromkeys(names + parents))


def imports_of(source: str, importer: str) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for every import of prunelora in `source`."""
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.extend((target, child.lineno, inside) for target in _targets(child, importer))
            visit(child, inside)

    visit(ast.parse(source), False)
    return found


def import_graph() -> list[tuple[str, str, int, bool]]:
    """(importer, imported, line, local) for every import of prunelora's own modules."""
    return [(module, target, line, local) for module, path in MODULES.items()
            for target, line, local in imports_of(path.read_text(), module)]


def upward_imports(edges) -> list[str]:
    bad = []
    for importer, imported, line, _ in edges:
        (low, unit), (high, own) = unit_of(imported), unit_of(importer)
        if unit != own and low >= high:
            bad.append(f"{importer}:{line} imports {imported} ({own} may import only layers below its own)")
    return bad


def cycles(edges) -> list[list[str]]:
    """The strongly connected components of more than one module (or a module importing itself)."""
    graph: dict[str, set[str]] = {}
    for importer, imported, _, _ in edges:
        graph.setdefault(importer, set()).add(imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def strongconnect(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                strongconnect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            strongconnect(node)
    return found


# --------------------------------------------------------------------------- the checks


def test_every_module_is_in_a_layer():
    for module in MODULES:
        unit_of(module)


def test_no_module_imports_upwards():
    """Top-level and function-local imports alike: a lazy import is still a dependency."""
    assert upward_imports(import_graph()) == []


def test_module_level_imports_have_no_cycle():
    top_level = [edge for edge in import_graph() if not edge[3]]
    assert cycles(top_level) == []


def test_no_cycle_even_through_imports_inside_functions():
    """An import moved into a function hides a cycle from Python, not from the design: counted
    with the module-level ones, the imports still form no cycle."""
    assert cycles(import_graph()) == []


def test_no_function_local_import_is_there_for_a_cycle():
    """No listed local import gives a cycle as its reason, and none closes one: its target does not
    import the importer back, directly or through other modules."""
    assert not [why for why in LOCAL_IMPORTS.values() if "cycle" in why]
    edges = import_graph()
    graph: dict[str, set[str]] = {}
    for importer, imported, _, local in edges:
        if not local:
            graph.setdefault(importer, set()).add(imported)

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo += graph.get(node, ())
        return False

    dodged = [f"{importer}:{line} imports {imported} inside a function, which imports it back"
              for importer, imported, line, local in edges if local and reaches(imported, importer)]
    assert dodged == []


def test_function_local_imports_are_the_listed_ones():
    """An import of prunelora inside a function is either needed there (a cycle, start-up time)
    and listed in LOCAL_IMPORTS with why, or belongs at the top of its module."""
    unlisted = [f"{importer}:{line} imports {imported} inside a function"
                for importer, imported, line, local in import_graph() if local
                and not any(importer == who and (imported == what or imported.startswith(what + "."))
                            for who, what in LOCAL_IMPORTS)]
    assert unlisted == []


def test_an_import_counts_the_packages_it_initialises():
    """`import a.b.c` runs a.b's __init__ first: an edge to it too (a cycle through a package's
    __init__ is a real one), but not to the importer's own packages."""
    edges = imports_of("from prunelora.evaluation.metrics import accuracy\n", "prunelora.pruning.criteria")
    assert {target for target, _, _ in edges} == {"prunelora.evaluation.metrics", "prunelora.evaluation"}
    assert upward_imports([("prunelora.pruning.criteria", t, line, local) for t, line, local in edges])
    own = imports_of("from prunelora.pruning.settings import PruneSettings\n", "prunelora.pruning.masks")
    assert [target for target, _, _ in own] == ["prunelora.pruning.settings"]


def test_an_upward_import_is_caught():
    """The check above is not vacuous: a data module importing the methods, at its top or inside
    a function, is reported, and so is a cycle."""
    for source in ("from prunelora.methods import unlearn\n",
                   "def f():\n    from prunelora.cli.app import main\n"):
        edges = [("prunelora.data.splits", target, line, local)
                 for target, line, local in imports_of(source, "prunelora.data.splits")]
        assert upward_imports(edges) and all(" imports prunelora.methods" in line or " imports prunelora.cli" in line
                                             for line in upward_imports(edges))
    sibling = [("prunelora.evaluation.evaluate", "prunelora.methods.base", 1, False)]
    assert upward_imports(sibling), "the methods and the evaluation must not import each other"
    loop = [("prunelora.models.registry", "prunelora.models.tv", 1, False),
            ("prunelora.models.tv", "prunelora.models.registry", 1, False)]
    assert cycles(loop) == [["prunelora.models.registry", "prunelora.models.tv"]]



def test_a_cycle_dodged_by_a_function_local_import_is_caught():
    """The shape the checks above exist for: two modules of one package, one importing the other
    at its top and the other importing it back inside a function."""
    top = imports_of("from prunelora.data.generic import make_loader\n", "prunelora.data.datasets")
    dodge = imports_of("def f():\n    from prunelora.data.datasets import ImageDataset\n", "prunelora.data.generic")
    assert [local for _, _, local in dodge] == [True]
    edges = [("prunelora.data.datasets", t, line, local) for t, line, local in top] + \
        [("prunelora.data.generic", t, line, local) for t, line, local in dodge]
    assert cycles([e for e in edges if not e[3]]) == []  # Python alone would not notice it
    assert cycles(edges) == [["prunelora.data.datasets", "prunelora.data.generic"]]
