"""Training a small `AutoencoderKLWan` with `transformers.Trainer` (for bases built from scratch, e.g. the shapes world)."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import AutoencoderKLWan
from transformers import Trainer
from transformers.utils import logging

from ..training.loss import step_generator


logger = logging.get_logger(__name__)


@dataclass
class VideoFramesCollator:
    """
    Stacks clips of uint8 frames `(F, H, W, 3)` (a `video` column, as in [`univigu_hf.shapes.shapes_dataset`]) into
    the VAE's input `(B, 3, F, H, W)` in `[-1, 1]`.

    Args:
        video_column (`str`, defaults to `"video"`): the column with the frames.
    """

    video_column: str = "video"

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        if not examples:
            raise ValueError("VideoFramesCollator got an empty list of examples")
        if self.video_column not in examples[0]:
            raise ValueError(f"examples have no {self.video_column!r} column (got {sorted(examples[0])})")
        frames = np.stack([np.asarray(example[self.video_column], dtype=np.uint8) for example in examples])
        if frames.ndim != 5 or frames.shape[-1] != 3:
            raise ValueError(f"videos must be uint8 (F, H, W, 3) arrays, got a batch of shape {frames.shape}")
        video = torch.from_numpy(frames).float().div(127.5).sub(1.0)
        return {"video": video.permute(0, 4, 1, 2, 3).contiguous()}


def edge_l1(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """
    Mean absolute difference between the horizontal and the vertical finite differences of two videos `(B, C, F, H,
    W)`: the edge term of [`AutoencoderTrainer`] (`gradient_weight`).

    Args:
        reconstruction (`torch.Tensor`): the decoded video.
        target (`torch.Tensor`): the input video, same shape.

    Returns:
        `torch.Tensor`: a scalar, the sum of the horizontal and the vertical term.
    """
    horizontal = (reconstruction.diff(dim=-1) - target.diff(dim=-1)).abs().mean()
    vertical = (reconstruction.diff(dim=-2) - target.diff(dim=-2)).abs().mean()
    return horizontal + vertical


class AutoencoderTrainer(Trainer):
    r"""
    A `transformers.Trainer` for `AutoencoderKLWan`: reconstruction MSE of a posterior sample plus `kl_weight` times
    the KL to the standard normal (the usual KL-VAE objective without the adversarial and perceptual terms, which a
    world of flat shapes does not need). Logs `loss_reconstruction` and `loss_kl`. The posterior noise comes from
    [`step_generator`], so a resumed run continues exactly.

    With `foreground_weight > 0` the squared error of each pixel is weighted by `1 + foreground_weight * d`, where
    `d` is the pixel's largest per-channel distance to its clip's median color (normalised by the mean weight). On
    clips of small objects over a plain background (the shapes world) plain MSE settles in the "background only"
    minimum (measured: 0.05 MSE with every shape gone after 1000 steps); the weighting makes the objects count.

    With `gradient_weight > 0` the loss adds that weight times the mean absolute difference between the horizontal
    and vertical finite differences of the reconstruction and of the target (an L1 edge term, logged as
    `loss_gradient`): squared error alone tolerates soft edges, which turned the shapes world's 6-11 pixel shapes into
    blobs of the wrong size.

    To train the decoder alone (so that the latents, and any model trained on them, stay exactly as they are), freeze
    the encoder before building the trainer: `vae.encoder.requires_grad_(False); vae.quant_conv.requires_grad_(False)`.
    The trainer then encodes without autograd, and the frozen weights are left bit for bit untouched.

    Args:
        model (`AutoencoderKLWan`): the VAE to train.
        args (`TrainingArguments`): as for `Trainer` (`remove_unused_columns` is ignored: the collator needs the
            video column).
        kl_weight (`float`, defaults to 1e-6): weight of the KL term.
        foreground_weight (`float`, defaults to 0.0): extra weight of pixels far from their clip's median color
            (see above; 0 is plain MSE).
        gradient_weight (`float`, defaults to 0.0): weight of the L1 edge term (see above; 0 leaves it out).
        sample_posterior (`bool`, defaults to `True`): decode a posterior sample (the KL-VAE objective). `False`
            decodes the posterior mean, the latents a diffusion model is trained on and generates: with a frozen
            encoder this teaches the decoder the details that the posterior noise would otherwise drown.
        **kwargs: the other `Trainer` arguments (`train_dataset`, `data_collator`, ...).
    """

    def __init__(
        self,
        model=None,
        args=None,
        *,
        kl_weight: float = 1e-6,
        foreground_weight: float = 0.0,
        gradient_weight: float = 0.0,
        sample_posterior: bool = True,
        **kwargs,
    ):
        if not isinstance(model, AutoencoderKLWan):
            raise TypeError(f"model must be a diffusers AutoencoderKLWan, got {type(model).__name__}")
        if not isinstance(kl_weight, (int, float)) or kl_weight < 0:
            raise ValueError(f"kl_weight must be a non-negative number, got {kl_weight!r}")
        if not isinstance(foreground_weight, (int, float)) or foreground_weight < 0:
            raise ValueError(f"foreground_weight must be a non-negative number, got {foreground_weight!r}")
        if not isinstance(gradient_weight, (int, float)) or gradient_weight < 0:
            raise ValueError(f"gradient_weight must be a non-negative number, got {gradient_weight!r}")
        if not isinstance(sample_posterior, bool):
            raise TypeError(f"sample_posterior must be a bool, got {sample_posterior!r}")
        kwargs.setdefault("data_collator", VideoFramesCollator())
        super().__init__(model=model, args=args, **kwargs)
        self.kl_weight = float(kl_weight)
        self.foreground_weight = float(foreground_weight)
        self.gradient_weight = float(gradient_weight)
        self.sample_posterior = sample_posterior
        self._loss_sums = None  # reconstruction, KL, edge term: summed on their device, read every logging_steps
        self._logged_steps = 0

    def _remove_unused_columns(self, dataset, description: str | None = None):
        return dataset

    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        video = inputs["video"]
        encoder_frozen = not any(
            p.requires_grad for p in (*model.encoder.parameters(), *model.quant_conv.parameters())
        )
        with torch.set_grad_enabled(torch.is_grad_enabled() and not encoder_frozen):
            posterior = model.encode(video).latent_dist
        if self.sample_posterior:
            generator = step_generator(self.args.seed, self.state.global_step, self.args.process_index)
            noise = torch.randn(posterior.mean.shape, generator=generator)
            latents = posterior.mean + posterior.std * noise.to(posterior.mean.device, posterior.mean.dtype)
        else:
            latents = posterior.mean
        reconstruction = model.decode(latents).sample
        squared_error = (reconstruction.float() - video.float()).pow(2)
        if self.foreground_weight > 0:
            median = video.float().flatten(2).median(dim=2).values[:, :, None, None, None]
            weights = 1 + self.foreground_weight * (video.float() - median).abs().amax(dim=1, keepdim=True)
            reconstruction_loss = (weights * squared_error).mean() / weights.mean()
        else:
            reconstruction_loss = squared_error.mean()
        mean, logvar = posterior.mean.float(), posterior.logvar.float()
        kl_loss = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()  # per latent element
        loss = reconstruction_loss + self.kl_weight * kl_loss
        gradient_loss = reconstruction_loss.new_zeros(())
        if self.gradient_weight > 0:
            gradient_loss = edge_l1(reconstruction.float(), video.float())
            loss = loss + self.gradient_weight * gradient_loss
        if model.training:
            losses = torch.stack([reconstruction_loss, kl_loss, gradient_loss]).detach()
            self._loss_sums = losses if self._loss_sums is None else self._loss_sums + losses
            self._logged_steps += 1
        return (loss, {"reconstruction": reconstruction}) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._logged_steps:
            means = (self._loss_sums.double() / self._logged_steps).tolist()
            logs["loss_reconstruction"] = round(means[0], 6)
            logs["loss_kl"] = round(means[1], 6)
            if self.gradient_weight > 0:
                logs["loss_gradient"] = round(means[2], 6)
            self._loss_sums, self._logged_steps = None, 0
        super().log(logs, start_time)


@torch.no_grad()
def latent_statistics(
    vae: AutoencoderKLWan, videos: Sequence[np.ndarray] | np.ndarray, batch_size: int = 16
) -> tuple[list[float], list[float]]:
    """
    Per-channel mean and standard deviation of the posterior means of `videos` (uint8 `(F, H, W, 3)` clips): the
    `latents_mean`/`latents_std` that Wan pipelines normalise latents with.

    Returns:
        `tuple[list[float], list[float]]`: `(latents_mean, latents_std)`, one value per latent channel.
    """
    collator = VideoFramesCollator()
    vae_device = next(vae.parameters()).device
    latents = []
    for start in range(0, len(videos), batch_size):
        batch = collator([{"video": clip} for clip in videos[start : start + batch_size]])["video"]
        latents.append(vae.encode(batch.to(vae_device, vae.dtype)).latent_dist.mean.float().cpu())
    if not latents:
        raise ValueError("videos is empty")
    stacked = torch.cat(latents).transpose(0, 1).flatten(1)
    return stacked.mean(dim=1).tolist(), stacked.std(dim=1).tolist()


__all__ = ["AutoencoderTrainer", "VideoFramesCollator", "latent_statistics"]
