"""How `import univigu_hf` registers the package with transformers and diffusers without importing either.

`import univigu_hf` only imports the standard library (the command line answers `--help` at once), yet after it
`transformers.AutoConfig` / `AutoModel` know the `univigu` model type, `transformers.pipeline` knows the three tasks
and diffusers' pipeline loader knows the `univigu_hf` library. Each registration waits for the module that holds the
registry: it runs when that module has been imported (at once if it already is), and it only records names, which
resolve to the package's classes on first lookup:

- `transformers.models.auto.configuration_auto` / `modeling_auto`: the model type and class names go into the
  tables transformers keeps for its own models (`CONFIG_MAPPING_NAMES`, `MODEL_MAPPING_NAMES`), with `univigu_hf` as
  the module they resolve in, so `AutoConfig.from_pretrained` / `AutoModel.from_pretrained` import the model when
  they first meet the model type, as they import transformers' own models.
- `transformers.pipelines`: the first `pipeline("video-to-text" | "text-to-video" | "text-to-video-text", ...)`
  imports `univigu_hf.pipelines.transformers_tasks`, which registers the tasks with `PIPELINE_REGISTRY`.
- `diffusers.pipelines.pipeline_loading_utils`: `LOADABLE_CLASSES` gets the `univigu_hf` library, so a saved
  pipeline's `model_index.json` names `univigu_hf` and loading it back finds the classes here.

Importing the classes themselves (e.g. `from univigu_hf import UniViGUModel`) needs none of this.
"""

import functools
import importlib
import importlib.abc
import sys
import threading
import warnings
from collections.abc import Callable
from types import ModuleType


PACKAGE = "univigu_hf"
MODEL_TYPE = "univigu"  # UniViGUConfig.model_type (tests/test_registration.py checks the names against the classes)
CONFIG_CLASS = "UniViGUConfig"
MODEL_CLASS = "UniViGUModel"
PIPELINE_TASKS = ("video-to-text", "text-to-video", "text-to-video-text")
TASKS_MODULE = "univigu_hf.pipelines.transformers_tasks"
# What diffusers' loader saves and loads a component of the library with, by the base class it derives from.
LOADABLE_CLASSES = {
    "PreTrainedModel": ["save_pretrained", "from_pretrained"],
    "SchedulerMixin": ["save_pretrained", "from_pretrained"],
}


# ----------------------------------------------------------------------------------------------------------------------
# Running code once a module has been imported
# ----------------------------------------------------------------------------------------------------------------------
_lock = threading.RLock()
_pending: dict[str, list[Callable[[ModuleType], None]]] = {}
_finding = threading.local()


class _WatchingLoader(importlib.abc.Loader):
    """Wraps a module's own loader for its import, then runs the module's pending callbacks."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def __getattr__(self, name: str):  # get_source, is_package, get_resource_reader, ...: the module's own loader's
        if name == "loader":
            raise AttributeError(name)
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        try:
            self.loader.exec_module(module)
        finally:  # the module keeps its own loader; this one only watched the import
            if getattr(module.__spec__, "loader", None) is self:
                module.__spec__.loader = self.loader
            if getattr(module, "__loader__", None) is self:
                module.__loader__ = self.loader
        _run_pending(module.__name__, sys.modules.get(module.__name__, module))


class _WatchingFinder(importlib.abc.MetaPathFinder):
    """First on `sys.meta_path` while callbacks wait: finds a watched module with the other finders and watches its
    loader. Every other import passes through untouched."""

    def find_spec(self, fullname, path, target=None):
        finding = getattr(_finding, "names", None)
        if finding is None:
            finding = _finding.names = set()
        if fullname not in _pending or fullname in finding:
            return None
        finding.add(fullname)
        try:
            for finder in list(sys.meta_path):
                find = getattr(finder, "find_spec", None)
                if finder is self or find is None:
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            finding.discard(fullname)
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _WatchingLoader(spec.loader)
        return spec


_FINDER = _WatchingFinder()


def when_imported(name: str, callback: Callable[[ModuleType], None]) -> None:
    """
    Calls `callback(module)` once the module `name` has been imported: now if it already is, else right after its
    import (from inside the import statement that imports it first). A callback that raises is reported as a
    `RuntimeWarning`, never as an error of the import.
    """
    with _lock:
        module = sys.modules.get(name)
        if module is None:
            _pending.setdefault(name, []).append(callback)
            if _FINDER not in sys.meta_path:
                sys.meta_path.insert(0, _FINDER)
            return
    _call(name, callback, module)


def _run_pending(name: str, module: ModuleType) -> None:
    with _lock:
        callbacks = _pending.pop(name, [])
        if not _pending and _FINDER in sys.meta_path:
            sys.meta_path.remove(_FINDER)
    for callback in callbacks:
        _call(name, callback, module)


def _call(name: str, callback: Callable[[ModuleType], None], module: ModuleType) -> None:
    try:
        callback(module)
    except Exception as error:  # a registry that changed shape: the import itself must still work
        warnings.warn(
            f"univigu_hf could not register with {name} ({type(error).__name__}: {error}); import the classes from "
            "univigu_hf directly (e.g. `from univigu_hf import UniViGUModel`) instead of going through the registry",
            RuntimeWarning,
            stacklevel=2,
        )


# ----------------------------------------------------------------------------------------------------------------------
# The registrations
# ----------------------------------------------------------------------------------------------------------------------
def _package() -> ModuleType:
    return sys.modules[PACKAGE]


def _register_config(configuration_auto: ModuleType) -> None:
    # transformers' own model types: a name in CONFIG_MAPPING_NAMES, resolved in the module cached for it.
    module_name = configuration_auto.model_type_to_module_name(MODEL_TYPE)
    configuration_auto.CONFIG_MAPPING_NAMES.setdefault(MODEL_TYPE, CONFIG_CLASS)
    configuration_auto.CONFIG_MAPPING._modules.setdefault(module_name, _package())


def _register_model(modeling_auto: ModuleType) -> None:
    # AutoModel's mapping finds a config class's model type by the class name, then the model class by name.
    configuration_auto = importlib.import_module("transformers.models.auto.configuration_auto")
    mapping = modeling_auto.MODEL_MAPPING
    mapping._model_mapping.setdefault(MODEL_TYPE, MODEL_CLASS)
    mapping._reverse_config_mapping.setdefault(CONFIG_CLASS, MODEL_TYPE)
    mapping._modules.setdefault(configuration_auto.model_type_to_module_name(MODEL_TYPE), _package())


def _register_pipeline_tasks(pipelines: ModuleType) -> None:
    registry = pipelines.PIPELINE_REGISTRY
    check_task = registry.check_task
    if getattr(check_task, "_univigu_hf", False):
        return

    @functools.wraps(check_task)
    def check_task_with_univigu(task):
        if task in PIPELINE_TASKS and task not in registry.supported_tasks:
            importlib.import_module(TASKS_MODULE)  # registers the three tasks (`PIPELINE_REGISTRY.register_pipeline`)
        return check_task(task)

    check_task_with_univigu._univigu_hf = True
    registry.check_task = check_task_with_univigu


def _register_diffusers_library(pipeline_loading_utils: ModuleType) -> None:
    # Without this, diffusers writes a component's full module path into model_index.json and refuses to load it
    # back ("... is not one of the libraries Diffusers can load components from").
    pipeline_loading_utils.LOADABLE_CLASSES.setdefault(PACKAGE, dict(LOADABLE_CLASSES))


def register() -> None:
    """Registers the package with transformers and diffusers, each when (or if already) imported. Idempotent."""
    when_imported("transformers.models.auto.configuration_auto", _register_config)
    when_imported("transformers.models.auto.modeling_auto", _register_model)
    when_imported("transformers.pipelines", _register_pipeline_tasks)
    when_imported("diffusers.pipelines.pipeline_loading_utils", _register_diffusers_library)
