"""Pipelines: the diffusers `UniViGUPipeline`, the transformers `pipeline()` tasks, and video input."""

from .transformers_tasks import TextToVideoPipeline, TextToVideoTextPipeline, VideoToTextPipeline
from .univigu import UniViGUPipeline, UniViGUPipelineOutput


__all__ = [
    "TextToVideoPipeline",
    "TextToVideoTextPipeline",
    "UniViGUPipeline",
    "UniViGUPipelineOutput",
    "VideoToTextPipeline",
]
