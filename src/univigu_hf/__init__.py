"""univigu_hf: Hugging Face-native Uni-ViGU (unified video generation and understanding on Wan2.1).

The package imports lazily, as transformers and diffusers do: `import univigu_hf` loads only the standard library,
and a name (`univigu_hf.UniViGUPipeline`, `from univigu_hf import UniViGUModel`) imports its module, with torch,
diffusers and transformers, on first use. Importing the package still registers `UniViGUConfig`/`UniViGUModel` with
transformers' `AutoConfig`/`AutoModel`, the three `transformers.pipeline` tasks and the package with diffusers'
pipeline loader; those registrations wait for the libraries to be imported (`univigu_hf.registration`).
"""

import importlib
import importlib.util
import os
from typing import TYPE_CHECKING

from . import registration


__version__ = "0.1.0.dev0"

DEFAULT_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shapes", "default_model")
"""The embedded default pipeline (trained on the shapes world, see docs/shapes.md): `UniViGUPipeline.from_pretrained(
univigu_hf.DEFAULT_MODEL)`; the CLI uses it when no `--model` is given."""
SAMPLE_VIDEO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shapes", "assets", "shapes_sample.mp4")
"""A shapes-world clip of a held-out combination (seed never used in training), to caption in demos."""

# The public names, by the submodule that defines them (imported on first access).
_import_structure = {
    "convert": ["convert_official_checkpoint"],
    "models": ["UniViGUConfig", "UniViGUModel", "UniViGUModelOutput", "UniViGUVideoContext"],
    "pipelines": [
        "TextToVideoPipeline",
        "TextToVideoTextPipeline",
        "UniViGUPipeline",
        "UniViGUPipelineOutput",
        "VideoToTextPipeline",
    ],
    "schedulers": ["UniFlowScheduler"],
}
# diffusers' pipeline loader looks the base classes of `LOADABLE_CLASSES["univigu_hf"]` up on this package.
_library_base_classes = {"PreTrainedModel": "transformers", "SchedulerMixin": "diffusers"}

if TYPE_CHECKING:
    from diffusers import SchedulerMixin  # noqa: F401
    from transformers import PreTrainedModel  # noqa: F401

    from .convert import convert_official_checkpoint
    from .models import UniViGUConfig, UniViGUModel, UniViGUModelOutput, UniViGUVideoContext
    from .pipelines import (
        TextToVideoPipeline,
        TextToVideoTextPipeline,
        UniViGUPipeline,
        UniViGUPipelineOutput,
        VideoToTextPipeline,
    )
    from .schedulers import UniFlowScheduler

_origins = {name: "." + module for module, names in _import_structure.items() for name in names}
_origins.update(_library_base_classes)


def __getattr__(name: str):
    if name in _origins:
        value = getattr(importlib.import_module(_origins[name], __name__), name)
        globals()[name] = value  # later lookups are plain attribute reads
        return value
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f".{name}", __name__)  # a submodule, e.g. `univigu_hf.shapes`
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_origins})


__all__ = [
    "DEFAULT_MODEL",
    "SAMPLE_VIDEO",
    "TextToVideoPipeline",
    "TextToVideoTextPipeline",
    "UniFlowScheduler",
    "UniViGUConfig",
    "UniViGUModel",
    "UniViGUModelOutput",
    "UniViGUPipeline",
    "UniViGUPipelineOutput",
    "UniViGUVideoContext",
    "VideoToTextPipeline",
    "convert_official_checkpoint",
]

registration.register()
