"""univigu_hf: Hugging Face-native Uni-ViGU (unified video generation and understanding on Wan2.1).

Importing the package registers `UniViGUConfig`/`UniViGUModel` with transformers' `AutoConfig`/`AutoModel` and the
package with diffusers' pipeline loader.
"""

import os

from diffusers import SchedulerMixin  # noqa: F401  (diffusers' loader looks these base classes up here)
from diffusers.pipelines import pipeline_loading_utils
from transformers import AutoConfig, AutoModel, PreTrainedModel  # noqa: F401

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


__version__ = "0.1.0.dev0"

DEFAULT_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shapes", "default_model")
"""The embedded default pipeline (trained on the shapes world, see docs/shapes.md): `UniViGUPipeline.from_pretrained(
univigu_hf.DEFAULT_MODEL)`; the CLI uses it when no `--model` is given."""
SAMPLE_VIDEO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shapes", "assets", "shapes_sample.mp4")
"""A shapes-world clip of a held-out combination (seed never used in training), to caption in demos."""

AutoConfig.register(UniViGUConfig.model_type, UniViGUConfig, exist_ok=True)
AutoModel.register(UniViGUConfig, UniViGUModel, exist_ok=True)

# diffusers only loads components of libraries it knows; without this, downloading a saved UniViGU pipeline from the
# Hub fails with "... is not a module in 'diffusers/pipelines'" (see docs/architecture.md).
pipeline_loading_utils.LOADABLE_CLASSES.setdefault(
    "univigu_hf",
    {
        "PreTrainedModel": ["save_pretrained", "from_pretrained"],
        "SchedulerMixin": ["save_pretrained", "from_pretrained"],
    },
)

__all__ = [
    "DEFAULT_MODEL",
    "SAMPLE_VIDEO",
    "UniFlowScheduler",
    "UniViGUConfig",
    "UniViGUModel",
    "UniViGUModelOutput",
    "UniViGUPipeline",
    "UniViGUPipelineOutput",
    "UniViGUVideoContext",
    "convert_official_checkpoint",
]
__all__ += ["TextToVideoPipeline", "TextToVideoTextPipeline", "VideoToTextPipeline"]
