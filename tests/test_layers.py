"""The package's imports flow one way: `_util` <- models / data / estimators / profiling <-
training / capture <- analysis <- demo / bench <- cli and the package's public names. Every import statement counts, also those
inside functions, so a lazy import cannot hide an upward dependency or a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mi_analysis"

# top-level part of the package -> layer; a part may import its own modules and lower layers only
LAYERS = {
    "_util": 0,
    "models": 1, "data": 1, "estimators": 1, "profiling": 1,
    "training": 2, "capture": 2,
    "analysis": 3,
    "demo": 4, "bench": 4,
    "cli": 5, "__init__": 5, "__main__": 5,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_package = MODULES[importer].name == "__init__.py"
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str) -> set[str]:
    """The package modules `module` imports (a name imported from a package counts as the
    submodule when there is one, else as the package itself)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("mi_analysis")}
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, node)
            if not source.startswith("mi_analysis"):
                continue
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                found.add(candidate if candidate in MODULES else source)
    return {name for name in found if name in MODULES}


def test_every_part_has_a_layer():
    assert {_part(module) for module in MODULES} <= set(LAYERS), "a new top-level part needs a layer in LAYERS"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_flow_downward(module):
    part, layer = _part(module), LAYERS[_part(module)]
    wrong = sorted(
        target for target in imports_of(module)
        if _part(target) != part and not LAYERS[_part(target)] < layer
    )
    assert not wrong, f"{module} (layer {layer}) imports {wrong}, which are not in a lower layer"


def test_no_import_cycles():
    graph = {module: imports_of(module) for module in MODULES}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module)
            assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checker_sees_upward_and_lazy_imports(tmp_path, monkeypatch):
    """The rule is not vacuous: an upward import inside a function of a models module is caught."""
    fake = tmp_path / "mi_analysis" / "models" / "fake.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    from mi_analysis.analysis import plots\n    from ..training import config\n")
    monkeypatch.setitem(MODULES, "mi_analysis.models.fake", fake)
    assert {"mi_analysis.analysis.plots", "mi_analysis.training.config"} <= imports_of("mi_analysis.models.fake")
    with pytest.raises(AssertionError, match="not in a lower layer"):
        test_imports_flow_downward("mi_analysis.models.fake")
