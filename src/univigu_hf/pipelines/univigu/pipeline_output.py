from dataclasses import dataclass
from typing import Any

from diffusers.utils import BaseOutput


@dataclass
class UniViGUPipelineOutput(BaseOutput):
    """
    Output of [`UniViGUPipeline`].

    Args:
        frames (`np.ndarray`, `torch.Tensor`, `list[list[PIL.Image.Image]]` or `None`):
            The generated videos (`output_type` "np": `(batch, frames, height, width, 3)` floats in [0, 1]; "pt": a
            `(batch, frames, 3, height, width)` tensor in [0, 1]; "pil": lists of images; "latent": normalised VAE
            latents `(batch, 16, latent_frames, latent_height, latent_width)`). `None` for captioning.
        text (`list[str]` or `None`):
            The generated captions, one per video. `None` for text-to-video.
    """

    frames: Any = None
    text: list[str] | None = None
