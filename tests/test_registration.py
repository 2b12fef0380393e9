"""`import univigu_hf` is lazy yet registers the package with transformers and diffusers (`univigu_hf.registration`):
the Auto classes, `transformers.pipeline` and diffusers' loader find the classes after `import univigu_hf` alone,
whichever of the libraries was imported first."""

import importlib
import subprocess
import sys
import textwrap
import warnings

import pytest

import univigu_hf
from univigu_hf import registration


def run_python(code: str, timeout: int = 240) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_the_registered_names_are_the_classes():
    from diffusers.pipelines.pipeline_loading_utils import LOADABLE_CLASSES
    from transformers.pipelines import PIPELINE_REGISTRY

    from univigu_hf.pipelines import transformers_tasks

    assert registration.MODEL_TYPE == univigu_hf.UniViGUConfig.model_type
    assert getattr(univigu_hf, registration.CONFIG_CLASS) is univigu_hf.UniViGUConfig
    assert getattr(univigu_hf, registration.MODEL_CLASS) is univigu_hf.UniViGUModel
    assert univigu_hf.UniViGUModel.config_class is univigu_hf.UniViGUConfig
    assert registration.TASKS_MODULE == transformers_tasks.__name__
    for task in registration.PIPELINE_TASKS:
        assert PIPELINE_REGISTRY.check_task(task)[1]["impl"].__module__ == transformers_tasks.__name__
    assert LOADABLE_CLASSES["univigu_hf"] == registration.LOADABLE_CLASSES
    # diffusers looks the base classes up on the package.
    assert set(registration.LOADABLE_CLASSES) == {"PreTrainedModel", "SchedulerMixin"}
    assert issubclass(univigu_hf.UniViGUModel, univigu_hf.PreTrainedModel)
    assert issubclass(univigu_hf.UniFlowScheduler, univigu_hf.SchedulerMixin)


def test_every_public_name_resolves_from_its_module():
    for module, names in univigu_hf._import_structure.items():
        for name in names:
            assert getattr(univigu_hf, name) is getattr(importlib.import_module(f"univigu_hf.{module}"), name)
    assert set(univigu_hf.__all__) == {name for names in univigu_hf._import_structure.values() for name in names} | {
        "DEFAULT_MODEL",
        "SAMPLE_VIDEO",
    }


def test_the_package_imports_lazily():
    result = run_python(
        """
        import sys
        import univigu_hf

        heavy = ("torch", "transformers", "diffusers", "univigu_hf.models", "univigu_hf.pipelines")
        print(sorted(name for name in heavy if name in sys.modules))
        assert "UniViGUPipeline" in dir(univigu_hf) and set(univigu_hf.__all__) <= set(dir(univigu_hf))
        univigu_hf.UniFlowScheduler  # a public name imports its module
        assert "univigu_hf.schedulers" in sys.modules and "univigu_hf.pipelines" not in sys.modules
        assert univigu_hf.shapes.__name__ == "univigu_hf.shapes"  # so does a submodule, as an attribute
        try:
            univigu_hf.NoSuchThing
        except AttributeError as error:
            assert "has no attribute 'NoSuchThing'" in str(error)
        """
    )
    assert result.stdout.strip() == "[]"


CHECKS = """
import sys
assert "univigu_hf.models" not in sys.modules  # what follows resolves the classes by name, through the registries
config = transformers.AutoConfig.from_pretrained(FOLDER)
model = transformers.AutoModel.from_pretrained(FOLDER)
assert type(config).__name__ == "UniViGUConfig" and type(model).__name__ == "UniViGUModel", (config, model)
assert type(transformers.AutoModel.from_config(config)).__name__ == "UniViGUModel"
task, implementation, _ = PIPELINE_REGISTRY.check_task("video-to-text")
assert implementation["impl"].__name__ == "VideoToTextPipeline", implementation
assert set(univigu_hf.registration.PIPELINE_TASKS) <= set(PIPELINE_REGISTRY.get_supported_tasks())
assert LOADABLE_CLASSES["univigu_hf"] == univigu_hf.registration.LOADABLE_CLASSES
print("ok")
"""
ORDERS = {
    "package first": "import univigu_hf\nimport transformers\n"
    "from transformers.pipelines import PIPELINE_REGISTRY\n"
    "from diffusers.pipelines.pipeline_loading_utils import LOADABLE_CLASSES\n",
    "libraries first": "import transformers\n"
    "from transformers import AutoModel, Trainer\n"
    "from transformers.pipelines import PIPELINE_REGISTRY\n"
    "from diffusers.pipelines.pipeline_loading_utils import LOADABLE_CLASSES\n"
    "import univigu_hf\n",
    # peft and diffusers import transformers' auto modules in the middle of their own imports.
    "through peft and diffusers": "import univigu_hf\nimport peft\npeft.PeftModel\nimport diffusers\n"
    "diffusers.DiffusionPipeline\nimport transformers\n"
    "from transformers.pipelines import PIPELINE_REGISTRY\n"
    "from diffusers.pipelines.pipeline_loading_utils import LOADABLE_CLASSES\n",
}


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    from univigu_hf.testing import build_tiny_univigu

    folder = tmp_path_factory.mktemp("registration") / "tiny"
    build_tiny_univigu().save_pretrained(folder)
    return str(folder)


@pytest.mark.slow
@pytest.mark.parametrize("order", list(ORDERS))
def test_the_libraries_find_the_classes_after_import_univigu_hf(order, saved_model):
    result = run_python(f"FOLDER = {saved_model!r}\n" + ORDERS[order] + CHECKS)
    assert result.stdout.strip().endswith("ok")


# ----------------------------------------------------------------------------------------------------------------------
# when_imported
# ----------------------------------------------------------------------------------------------------------------------
def test_when_imported_runs_after_the_import_and_restores_the_loader(tmp_path, monkeypatch):
    (tmp_path / "univigu_probe_later.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []
    registration.when_imported("univigu_probe_later", lambda module: seen.append(module.VALUE))
    assert seen == [] and registration._FINDER in sys.meta_path
    try:
        import univigu_probe_later

        assert seen == [1]  # after the module ran, inside the import statement
        assert type(univigu_probe_later.__loader__).__name__ == "SourceFileLoader"
        assert univigu_probe_later.__spec__.loader is univigu_probe_later.__loader__
        registration.when_imported("univigu_probe_later", lambda module: seen.append(2))  # already imported: at once
        assert seen == [1, 2]
    finally:
        sys.modules.pop("univigu_probe_later", None)


def test_a_failing_registration_warns_and_the_import_still_works(tmp_path, monkeypatch):
    (tmp_path / "univigu_probe_broken.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def fails(module):
        raise KeyError("the registry changed")

    registration.when_imported("univigu_probe_broken", fails)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import univigu_probe_broken
        assert univigu_probe_broken.VALUE == 1
        (warning,) = [w for w in caught if issubclass(w.category, RuntimeWarning)]
        assert "could not register with univigu_probe_broken (KeyError" in str(warning.message)
    finally:
        sys.modules.pop("univigu_probe_broken", None)
