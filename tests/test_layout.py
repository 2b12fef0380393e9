"""The layout a maintainer relies on: no import cycle in the package, imports that point down the layers, no
oversized module, the demo apart from the library, scripts that build their components from the package rather than
from the tests, and docs whose links and repository paths exist."""

import ast
import re
from pathlib import Path

import pytest

from univigu_hf import UniViGUConfig
from univigu_hf.hub.checkpoint import UNIVIGU_MODEL_TYPE


ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "univigu_hf"
MAX_LINES = 600
# The layers of docs/architecture.md ("Module dependencies point one way"), by the name below `univigu_hf`: a module
# imports its own layer or the ones below. `hub` imports nothing of the package (it knows the model type by name), so
# the models' and the pipeline's `push_to_hub` and the training script can hand over to it.
LAYERS = {
    "utils": 0,
    "hub": 0,
    "registration": 0,  # names the classes for transformers' and diffusers' registries, imports none of them
    "models": 1,
    "schedulers": 1,
    "pipelines": 2,
    "convert": 2,
    "training": 3,
    "testing": 3,
    "shapes": 4,  # the demo; only the commands import it (below)
    "commands": 5,  # the handlers of the `univigu` command
    "cli": 6,  # its arguments, parsed with the standard library only
}


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


def _layer(name: str) -> int:
    part = name.split(".")[1]
    assert part in LAYERS, f"{name}: add {part!r} to LAYERS in tests/test_layout.py (and to docs/architecture.md)"
    return LAYERS[part]


def test_imports_point_down_the_layers():
    modules = _modules()
    upward = {
        (name, target)
        for name, path in modules.items()
        if name != "univigu_hf"  # the package's __init__: the public API, above everything but the demo
        for target in _imports(name, path, modules)
        if _layer(target) > _layer(name)
    }
    assert upward == set()


def test_no_module_is_oversized():
    sizes = {str(path.relative_to(ROOT)): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")}
    assert {path: lines for path, lines in sizes.items() if lines > MAX_LINES} == {}


def test_the_library_does_not_import_the_demo():
    modules = _modules()
    library = {name: path for name, path in modules.items() if not name.startswith("univigu_hf.shapes")}
    library.pop("univigu_hf.commands.tools")  # `univigu demo` runs the demo, inside its handler
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


DOCS = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOCS.append(PACKAGE / "hub" / "model_cards" / "README.md")
LINK = re.compile(r"\]\(([^)\s]+)\)")
# A path in backticks that starts at one of the repository's top-level folders, e.g. `src/univigu_hf/cli.py`.
REPOSITORY_PATH = re.compile(
    r"`((?:src|tests|docs|benchmarks|examples|research|scripts|requirements|model_cards)/[^`\s*<>{}]*)`"
)


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_the_docs_cite_paths_that_exist(doc):
    text = doc.read_text()
    links = [target.split("#")[0] for target in LINK.findall(text) if "://" not in target and ":" not in target]
    missing = [target for target in links if target and not (doc.parent / target).exists()]
    missing += [path for path in REPOSITORY_PATH.findall(text) if not (ROOT / path.rstrip(".,;:")).exists()]
    assert missing == []
