"""The unified-flow training objective: continuous flow matching for video + discrete flow matching for text."""

import hashlib
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from transformers.utils import ModelOutput, logging

from ..schedulers import UniFlowScheduler


logger = logging.get_logger(__name__)

# Per-sample tasks: which modality is noisy. They make the three inference modes in-distribution.
JOINT, UNDERSTANDING, GENERATION = 0, 1, 2
TASK_NAMES = {JOINT: "joint", UNDERSTANDING: "understanding", GENERATION: "generation"}
VIDEO_TIME_SAMPLINGS = ("uniform", "shifted_uniform", "logit_normal")
NULL_CONDITIONS = ("empty", "zeros")
UNDERSTANDING_CONDITIONS = ("zeros", "prompt")


@dataclass
class UniFlowTrainingConfig:
    r"""
    Settings of the unified-flow objective.

    Args:
        text_loss_weight (`float`, defaults to 1.0):
            `lambda` in `MSE(video velocity) + lambda * CE(text logits)`.
        joint_prob, understanding_prob, generation_prob (`float`, default 1/3 each):
            Probabilities of the per-sample tasks (normalised): joint (video and text noisy, independent times),
            understanding (video clean, text noisy: captioning), generation (text clean, video noisy: text-to-video,
            with the clean prompt tokens in the text stream as at inference).
        condition_dropout_prob (`float`, defaults to 0.1):
            Probability that a joint/generation sample's prompt condition is replaced by the null condition (for
            classifier-free guidance and, in Knowledge Recall, so the prompt cannot simply be copied).
        condition_dropout_value (`str`, defaults to `"empty"`):
            The null condition: `"empty"` (the empty-prompt embedding, what CFG's unconditional pass uses; needs
            `null_condition` in the loss call) or `"zeros"` (the official captioning condition).
        understanding_condition (`str`, defaults to `"zeros"`):
            What understanding samples see in the cross-attention: `"zeros"` (as `caption(prompt=None)` at inference)
            or `"prompt"` (the prompt, still dropped with `condition_dropout_prob`).
        video_time_sampling (`str`, defaults to `"shifted_uniform"`):
            Video sigma sampler: `"uniform"`, `"shifted_uniform"` (Wan/DiffSynth style) or `"logit_normal"`
            (then shifted).
        video_time_shift (`float`, *optional*):
            Shift of the video time sampler; `None` uses the scheduler's `shift`.
        logit_mean, logit_std (`float`): parameters of `"logit_normal"`.
        video_foreground_weight (`float`, defaults to 0.0):
            Extra weight of the latent positions that stand out from their frame: each element's squared velocity
            error is weighted by `1 + video_foreground_weight * d`, where `d` is the position's mean absolute
            distance (over channels) from the clean latent frame's per-channel spatial median, and the weighted mean
            is divided by the mean weight. For scenes whose subject is small against a plain background, where the
            background dominates the plain mean. 0 is the plain mean, bit for bit.
        seed (`int`, defaults to 0): base seed of the per-step noise (see [`step_generator`]).
        video_only (`bool`, defaults to `False`):
            Wan's text-to-video objective: every sample is a generation sample with *no* text stream (the task
            probabilities are ignored and the text loss is 0). With no text tokens the model's forward is exactly
            `WanTransformer3DModel`'s, so together with `trainable="video"` this trains (or fine-tunes) the Wan base
            itself; [`UniViGUModel.to_wan`] then exports it.
    """

    text_loss_weight: float = 1.0
    joint_prob: float = 1 / 3
    understanding_prob: float = 1 / 3
    generation_prob: float = 1 / 3
    condition_dropout_prob: float = 0.1
    condition_dropout_value: str = "empty"
    understanding_condition: str = "zeros"
    video_time_sampling: str = "shifted_uniform"
    video_time_shift: float | None = None
    logit_mean: float = 0.0
    logit_std: float = 1.0
    video_foreground_weight: float = 0.0
    seed: int = 0
    video_only: bool = False

    def __post_init__(self):
        def number(name, low=None, high=None, low_open=False, optional=False):
            value = getattr(self, name)
            if optional and value is None:
                return
            accepted = (
                f"{'None or ' if optional else ''}a finite number"
                + (f" {'>' if low_open else '>='} {low}" if low is not None and high is None else "")
                + (f" in [{low}, {high}]" if high is not None else "")
            )
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be {accepted}, got {value!r}")
            if low is not None and (value < low or (low_open and value == low)) or high is not None and value > high:
                raise ValueError(f"{name} must be {accepted}, got {value!r}")

        probabilities = ("joint_prob", "understanding_prob", "generation_prob")
        for name in probabilities:
            number(name, low=0)
        if sum(getattr(self, name) for name in probabilities) <= 0:
            raise ValueError(
                "joint_prob, understanding_prob and generation_prob must not all be 0 (accepted: non-negative numbers "
                f"with a positive sum), got { ({name: getattr(self, name) for name in probabilities}) }"
            )
        number("condition_dropout_prob", low=0, high=1)
        number("text_loss_weight", low=0)
        for name, value, accepted in (
            ("condition_dropout_value", self.condition_dropout_value, NULL_CONDITIONS),
            ("understanding_condition", self.understanding_condition, UNDERSTANDING_CONDITIONS),
            ("video_time_sampling", self.video_time_sampling, VIDEO_TIME_SAMPLINGS),
        ):
            if value not in accepted:
                raise ValueError(f"{name} must be one of {accepted}, got {value!r}")
        number("video_time_shift", low=0, low_open=True, optional=True)
        number("logit_mean")
        number("logit_std", low=0, low_open=True)
        number("video_foreground_weight", low=0)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class UniFlowLossOutput(ModelOutput):
    """
    Args:
        loss (`torch.Tensor`): `video_loss + text_loss_weight * text_loss` (a scalar with a graph).
        video_loss (`torch.Tensor`): mean velocity MSE over the samples whose video was noisy (0 if none).
        text_loss (`torch.Tensor`): mean token cross-entropy over the samples whose text was noisy (0 if none).
        tasks (`torch.LongTensor`): the per-sample task (`JOINT`, `UNDERSTANDING`, `GENERATION`).
        condition_dropped (`torch.BoolTensor`): which samples' prompt condition was replaced by the null one.
    """

    loss: torch.Tensor | None = None
    video_loss: torch.Tensor | None = None
    text_loss: torch.Tensor | None = None
    tasks: torch.Tensor | None = None
    condition_dropped: torch.Tensor | None = None


def step_generator(seed: int, *keys: int) -> torch.Generator:
    """
    A CPU generator whose state depends only on `(seed, *keys)` (e.g. the optimizer step, the micro-batch and the
    process index). Drawing the noise of every step from its own generator makes training resume exactly from any
    checkpoint, whatever happened before it, and makes processes draw different noise.
    """
    digest = hashlib.sha256(repr((seed, *keys)).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def sample_tasks(batch_size: int, config: UniFlowTrainingConfig, generator: torch.Generator) -> torch.LongTensor:
    """Draws one task per sample with the configured probabilities."""
    probabilities = torch.tensor(
        [config.joint_prob, config.understanding_prob, config.generation_prob], dtype=torch.float64
    )
    return torch.multinomial(probabilities / probabilities.sum(), batch_size, replacement=True, generator=generator)


def sample_video_sigmas(
    batch_size: int, config: UniFlowTrainingConfig, scheduler: UniFlowScheduler, generator: torch.Generator
) -> torch.Tensor:
    """Video noise levels in (0, 1) (1 = pure noise) from the configured sampler and shift (the scheduler's
    [`~UniFlowScheduler.sample_video_sigmas`], with `video_time_shift` or else the scheduler config's shift)."""
    shift = scheduler.config.shift if config.video_time_shift is None else config.video_time_shift
    return scheduler.sample_video_sigmas(
        batch_size,
        generator=generator,
        mode=config.video_time_sampling,
        logit_mean=config.logit_mean,
        logit_std=config.logit_std,
        shift=shift,
    )


def unified_flow_loss(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    scheduler: UniFlowScheduler,
    config: UniFlowTrainingConfig,
    generator: torch.Generator,
    null_condition: torch.Tensor | None = None,
) -> UniFlowLossOutput:
    r"""
    The unified-flow loss of one batch (all randomness from `generator`, drawn on the CPU).

    Each sample gets a task (see [`UniFlowTrainingConfig`]). Noisy video: `x_s = (1 - s) x0 + s noise` at a sampled
    sigma `s`, target `noise - x0`, timestep `1000 s`. Noisy text: each target token kept with probability
    `kappa(t)` else a source token (`scheduler.add_noise_text`), timestep `round((1 - t) 1000)`; the loss is the
    cross-entropy of the logits against the clean target over all `max_text_length` positions (pads included, so the
    model learns where a caption ends). Clean text (generation) is the prompt, with its padding mask, at timestep 0;
    clean video (understanding) is at timestep 0.

    Args:
        model: a [`UniViGUModel`] (or a wrapper with the same forward: PEFT, DDP, ...).
        batch (`dict`): from [`UniViGUDataCollator`]: `video_latents` `(B, C, F, H, W)` (normalised clean latents),
            `prompt_embeds` `(B, L_c, text_dim)`, `text_ids` `(B, L)` (clean target), `prompt_ids` and
            `prompt_attention_mask` `(B, L)` (the prompt for the text stream of generation samples).
        scheduler ([`UniFlowScheduler`]): provides the text noise and the time maps.
        config ([`UniFlowTrainingConfig`]): the objective's settings.
        generator (`torch.Generator`): CPU generator of this step (see [`step_generator`]).
        null_condition (`torch.Tensor`, *optional*): the empty-prompt embedding `(1 or B, L_c, text_dim)`, required
            when `config.condition_dropout_value == "empty"` and dropout can happen.

    Returns:
        [`UniFlowLossOutput`]
    """
    for key in ("video_latents", "prompt_embeds", "text_ids", "prompt_ids", "prompt_attention_mask"):
        if key not in batch:
            raise ValueError(f"batch is missing {key!r} (got {sorted(batch)}); build batches with UniViGUDataCollator")
    latents = batch["video_latents"]
    device = latents.device
    batch_size = latents.shape[0]
    text_ids = batch["text_ids"]
    if text_ids.shape != batch["prompt_ids"].shape:
        raise ValueError(
            f"text_ids {tuple(text_ids.shape)} and prompt_ids {tuple(batch['prompt_ids'].shape)} must have the same "
            "shape (pad both to max_text_length)"
        )

    # 1. Tasks and times (all on the CPU generator, then moved).
    tasks = sample_tasks(batch_size, config, generator)
    if config.video_only:
        tasks = torch.full_like(tasks, GENERATION)
    video_noisy = tasks != UNDERSTANDING
    text_noisy = tasks != GENERATION
    sigmas = sample_video_sigmas(batch_size, config, scheduler, generator) * video_noisy
    noise = torch.randn(latents.shape, generator=generator, dtype=torch.float32)
    text_times = scheduler.sample_text_times(batch_size, generator=generator, dtype=torch.float64)
    noisy_text = scheduler.add_noise_text(text_ids.cpu(), text_times, generator=generator)
    dropped = torch.rand(batch_size, generator=generator) < config.condition_dropout_prob

    # 2. Model inputs.
    sigmas, noise = sigmas.to(device), noise.to(device)
    clean = latents.float()
    noisy_latents = scheduler.add_noise(clean, noise, sigmas)
    video_timestep = scheduler.sigma_to_timestep(sigmas)
    text_noisy_device = text_noisy.to(device)
    stream_ids = torch.where(text_noisy_device[:, None], noisy_text.to(device), batch["prompt_ids"])
    text_timestep = torch.where(
        text_noisy_device,
        scheduler.text_time_to_timestep(text_times).to(device, torch.float32),
        torch.zeros(batch_size, device=device),
    )
    stream_mask = torch.where(
        text_noisy_device[:, None], torch.ones_like(batch["prompt_attention_mask"]), batch["prompt_attention_mask"]
    )
    condition = _condition(batch["prompt_embeds"], tasks, dropped, config, null_condition)

    dtype = _compute_dtype(model)
    text_inputs = {
        "text_ids": stream_ids,
        "text_timestep": text_timestep,
        "text_attention_mask": None if bool(stream_mask.all()) else stream_mask,
    }
    if config.video_only:
        text_inputs = {}
    outputs = model(
        video_latents=noisy_latents.to(dtype),
        video_timestep=video_timestep,
        encoder_hidden_states=condition.to(dtype),
        **text_inputs,
    )

    # 3. Losses, averaged over the samples where each modality was noisy.
    video_weights = video_noisy.to(device, torch.float32)
    target = scheduler.get_velocity_target(clean, noise)
    squared_error = (outputs.video_velocity.float() - target).pow(2)
    if config.video_foreground_weight > 0:
        weights = 1 + config.video_foreground_weight * foreground_distance(clean)
        per_sample_mse = (weights * squared_error).flatten(1).mean(dim=1) / weights.flatten(1).mean(dim=1)
    else:
        per_sample_mse = squared_error.flatten(1).mean(dim=1)
    video_loss = (per_sample_mse * video_weights).sum() / video_weights.sum().clamp_min(1.0)
    if outputs.text_logits is None:
        text_loss = torch.zeros((), device=device)
    else:
        text_weights = text_noisy.to(device, torch.float32)
        per_token_ce = F.cross_entropy(outputs.text_logits.float().transpose(1, 2), text_ids, reduction="none")
        text_loss = (per_token_ce.mean(dim=1) * text_weights).sum() / text_weights.sum().clamp_min(1.0)
    loss = video_loss + config.text_loss_weight * text_loss
    can_drop = tasks != UNDERSTANDING if config.understanding_condition == "zeros" else torch.ones_like(dropped)
    return UniFlowLossOutput(
        loss=loss,
        video_loss=video_loss.detach(),
        text_loss=text_loss.detach(),
        tasks=tasks,
        condition_dropped=dropped & can_drop,
    )


def foreground_distance(latents: torch.Tensor) -> torch.Tensor:
    """
    How far each latent position stands out from its frame: the mean absolute distance over channels from the
    frame's per-channel spatial median.

    Args:
        latents (`torch.Tensor`): clean latents `(B, C, F, H, W)`.

    Returns:
        `torch.Tensor` of shape `(B, 1, F, H, W)`, non-negative.
    """
    median = latents.flatten(3).median(dim=3).values[..., None, None]
    return (latents - median).abs().mean(dim=1, keepdim=True)


def _condition(prompt_embeds, tasks, dropped, config, null_condition) -> torch.Tensor:
    device = prompt_embeds.device
    if config.condition_dropout_value == "empty":
        if null_condition is None:
            if config.condition_dropout_prob > 0:
                raise ValueError(
                    "null_condition (the empty-prompt embedding) is required with condition_dropout_value='empty'; "
                    "encode it with pipeline.encode_prompt(['']) or use condition_dropout_value='zeros'"
                )
            null = torch.zeros_like(prompt_embeds)
        else:
            null = null_condition.detach().to(device, prompt_embeds.dtype).expand_as(prompt_embeds)
    else:
        null = torch.zeros_like(prompt_embeds)
    use_null = dropped.to(device)
    if config.understanding_condition == "zeros":
        is_understanding = (tasks == UNDERSTANDING).to(device)
        condition = torch.where(is_understanding[:, None, None], torch.zeros_like(prompt_embeds), prompt_embeds)
        use_null = use_null & ~is_understanding
    else:
        condition = prompt_embeds
    return torch.where(use_null[:, None, None], null, condition)


def _compute_dtype(model: torch.nn.Module) -> torch.dtype:
    base = model
    while hasattr(base, "module") and not hasattr(base, "config"):  # DDP / accelerate wrappers
        base = base.module
    dtype = getattr(base, "dtype", None)
    return dtype if isinstance(dtype, torch.dtype) else torch.float32
