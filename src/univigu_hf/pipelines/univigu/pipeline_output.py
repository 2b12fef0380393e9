"""`UniViGUPipelineOutput`, and how [`UniViGUPipeline`] turns what its models produce into it: the finiteness check
of every model output, the latents' normalisation, and the decoding of videos and captions."""

from dataclasses import dataclass
from typing import Any

import torch
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import get_module_execution_device

from ...utils.checks import all_finite


_NON_FINITE_HINT = (
    "The model produced them: float16 activations can overflow (use bfloat16 or float32: torch_dtype=...), the "
    "weights may come from a diverged training run (check them for NaN), or the inputs were out of range"
)


def _damaged_weights(model) -> str:
    """The diagnosis when the model's own weights hold NaN or inf (a file damaged in place loads without error:
    safetensors carries no checksum), else an empty string. Runs only once a non-finite output was found."""
    if not isinstance(model, torch.nn.Module):
        return ""
    damaged = [name for name, parameter in model.named_parameters() if not all_finite(parameter.detach())]
    if not damaged:
        return ""
    return (
        f"The transformer's weights themselves hold NaN or inf ({len(damaged)} tensors, e.g. {damaged[0]!r}): the "
        "weights file is damaged (safetensors files carry no checksum, so a file changed on disk loads without "
        "error) or comes from a diverged training run; re-download or re-save the model"
    )


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


class UniViGUPipelineOutputMixin:
    """The model-output checks, latent normalisation and decoding of [`UniViGUPipeline`]; every task uses them."""

    def _check_finite_output(self, name: str, tensor, step: int | None = None, hint: str = "") -> None:
        """
        Raises a `ValueError` if `tensor` holds NaN or inf, naming it and the denoising step: a non-finite value never
        recovers (every later step and the decoded video would be NaN), so the run stops where it first appeared.
        """
        if tensor is None or torch.compiler.is_compiling():
            return
        if all_finite(tensor):
            return
        bad = int((~torch.isfinite(tensor)).sum())
        where = "" if step is None else f" at denoising step {step} (0-based) of {self._num_timesteps}"
        raise ValueError(
            f"{name} contains NaN or inf values ({bad} of {tensor.numel()}){where}. "
            f"{_damaged_weights(self.transformer) or hint or _NON_FINITE_HINT}."
        )

    def _normalize(self, latents: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        if not self.config.normalize_latents:
            return latents
        z_dim = self.vae.config.z_dim
        mean = torch.tensor(self.vae.config.latents_mean).view(1, z_dim, 1, 1, 1).to(latents.device, latents.dtype)
        inv_std = 1.0 / torch.tensor(self.vae.config.latents_std).view(1, z_dim, 1, 1, 1).to(
            latents.device, latents.dtype
        )
        return latents / inv_std + mean if inverse else (latents - mean) * inv_std

    def _decode(self, latents: torch.Tensor, output_type: str):
        if output_type == "latent":
            return latents
        latents = latents.to(get_module_execution_device(self.vae), dtype=self.vae.dtype)
        video = self.vae.decode(self._normalize(latents, inverse=True), return_dict=False)[0]
        self._check_finite_output(
            "The decoded video",
            video,
            hint="The VAE produced them from finite latents: its float16 decoder can overflow, use bfloat16 or "
            "float32 for the vae",
        )
        return self.video_processor.postprocess_video(video, output_type=output_type)

    def _decode_text(self, ids: torch.Tensor) -> list[str]:
        texts = []
        eos = self.tokenizer.eos_token_id
        known = len(self.tokenizer)
        for row in ids.tolist():
            if eos is not None and eos in row:
                row = row[: row.index(eos)]
            row = [token for token in row if token < known]  # e.g. the mask token of a mask source
            texts.append(self.tokenizer.decode(row, skip_special_tokens=True).strip())
        return texts
