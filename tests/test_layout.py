"""The layout a maintainer relies on: no import cycle in the package, no oversized module, the demo apart from the
library, and scripts that build their components from the package rather than from the tests."""

import ast
from pathlib import Path

import pytest

from univigu_hf import UniViGUConfig
from univigu_hf.hub.model_card import UNIVIGU_MODEL_TYPE


ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "univigu_hf"
MAX_LINES = 800


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every package module `name` imports, at module level or inside functions, with the packages on the way."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        for target in targets:
            parts = target.split(".")
            for end in range(2, len(parts) + 1):  # importing a.b.c runs a.b's __init__ too
                prefix = ".".join(parts[:end])
                if prefix in modules and prefix != name and not name.startswith(prefix + "."):
                    found.add(prefix)
    return found


def test_the_package_has_no_import_cycle():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                cycle = path[path.index(target) :] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_no_module_is_oversized():
    sizes = {str(path.relative_to(ROOT)): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")}
    assert {path: lines for path, lines in sizes.items() if lines > MAX_LINES} == {}


def test_the_library_does_not_import_the_demo():
    modules = _modules()
    library = {name: path for name, path in modules.items() if not name.startswith("univigu_hf.shapes")}
    library.pop("univigu_hf.cli")  # the command wires `univigu demo` to the demo, inside its handler
    offenders = {
        name
        for name, path in library.items()
        if any(t.startswith("univigu_hf.shapes") for t in _imports(name, path, modules))
    }
    assert offenders == set()


def test_scripts_build_from_the_package_not_from_the_tests():
    scripts = [*ROOT.glob("benchmarks/*.py"), *ROOT.glob("examples/**/*.py"), *ROOT.glob("research/*.py")]
    offenders = [str(p.relative_to(ROOT)) for p in scripts if "conftest" in p.read_text() or "tests" in _path_hacks(p)]
    assert offenders == []


def _path_hacks(path: Path) -> str:
    return "".join(line for line in path.read_text().splitlines() if "sys.path" in line)


def test_the_hub_knows_the_model_type_without_importing_the_models():
    assert UNIVIGU_MODEL_TYPE == UniViGUConfig.model_type
