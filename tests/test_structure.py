"""The package's shape: dependencies point one way (no import cycle), the engine imports no model, and the
command line calls only public functions. Read from the source with ``ast`` (nothing is imported), so
imports inside functions count too; modules named as strings in the registry (``prodgen.models.registry``'s
``"module:function"`` entries, loaded with importlib on demand) are not imports and do not count."""
from __future__ import annotations

import ast
from pathlib import Path

import prodgen

PACKAGE = Path(prodgen.__file__).resolve().parent
ENGINE = ("prodgen.engine.train", "prodgen.engine.losses", "prodgen.engine.distributed", "prodgen.engine.callbacks")
# what the engine may build on (DESIGN.md: models -> engine -> catalog, metrics, runtime, paths)
ENGINE_MAY_IMPORT = ("prodgen.catalog", "prodgen.metrics", "prodgen.paths", "prodgen.engine")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules) -> set[str]:
    """The prodgen modules that ``name`` imports anywhere in its source."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:  # `from pkg import sub` imports the submodule pkg.sub
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in modules else base)
    return {t for t in targets if t in modules and t != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _find_cycle(graph) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_is_read_correctly():
    graph = _graph()
    assert "prodgen.engine.losses" in graph["prodgen.engine.train"]  # `from . import losses`
    assert "prodgen.engine.runtime" in graph["prodgen.engine.train"]  # an import inside a function
    assert "prodgen.models.cgan" in graph["prodgen.models.cvae"]  # `from .cgan import Generator`
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_prodgen_has_no_import_cycle():
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_engine_imports_no_model_and_only_the_basics():
    graph = _graph()
    for module in ENGINE:
        assert module in graph, f"{module} is missing"
        bad = {m for m in graph[module] if not m.startswith(ENGINE_MAY_IMPORT)}
        assert not bad, f"{module} imports {sorted(bad)}; the engine may import only {ENGINE_MAY_IMPORT}"


def _private_uses(tree: ast.Module, package: str = "prodgen") -> list[str]:
    """``_name`` functions of other prodgen modules that a module imports or reaches as ``module._name``."""
    def private(name):
        return name.startswith("_") and not name.startswith("__")

    bound, found = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(package)):
            for alias in node.names:
                if private(alias.name):
                    found.append(f"from {'.' * node.level}{node.module or ''} import {alias.name}")
                else:
                    bound.add(alias.asname or alias.name)  # maybe a module: `from . import pretrained`
        elif isinstance(node, ast.Import):
            bound |= {alias.asname or alias.name.split(".")[0]
                      for alias in node.names if alias.name.startswith(package)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in bound:
                found.append(f"{ast.unparse(node)} (line {node.lineno})")
    return found


def test_the_private_name_scan_catches_both_forms():
    tree = ast.parse("from .generate import _check_n\nfrom . import pretrained\nimport prodgen.models.text\n"
                     "def f():\n    pretrained._builder('x')\n    prodgen.models.text._tokens('y')\n"
                     "    pretrained.load('z')\n")
    assert _private_uses(tree) == ["from .generate import _check_n", "pretrained._builder (line 5)",
                                   "prodgen.models.text._tokens (line 6)"]


def test_the_command_line_calls_no_private_function_of_another_module():
    tree = ast.parse((PACKAGE / "cli.py").read_text(encoding="utf-8"))
    assert _private_uses(tree) == []


# The layers, lowest first (DESIGN.md §3): a module may import its own layer and the layers below it, never above.
LAYERS = (
    ("prodgen.paths", "prodgen.numbers", "prodgen.fonts", "prodgen.viz", "prodgen.catalog", "prodgen.metrics",
     "prodgen.checkpoints"),
    ("prodgen.engine",),
    ("prodgen.models",),
    ("prodgen.evaluation",),
    ("prodgen.apps",),
    ("prodgen.studies",),
    ("prodgen.course", "prodgen.checks"),
    ("prodgen.cli", "prodgen.__main__"),
)


def _layer(module: str) -> int | None:
    for level, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return level
    return None


def test_every_module_belongs_to_a_layer():
    unplaced = [m for m in _modules() if m != "prodgen" and _layer(m) is None]
    assert not unplaced, f"modules in no layer of tests/test_structure.py LAYERS: {unplaced}"


def test_imports_point_down_the_layers():
    graph = _graph()
    upward = [f"{m} ({_layer(m)}) imports {t} ({_layer(t)})" for m, targets in graph.items() if m != "prodgen"
              for t in targets if t != "prodgen" and _layer(t) > _layer(m)]
    assert not upward, "imports that run up the layers:\n" + "\n".join(sorted(upward))


def test_each_sub_package_says_what_it_holds_and_may_import():
    for folder in ("engine", "evaluation", "apps", "studies", "models", "course", "catalog"):
        doc = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text(encoding="utf-8")))
        assert doc, f"prodgen/{folder}/__init__.py needs a docstring: what lives there and what it may import"
