"""Argument handling of `UniViGUPipeline`: the defaults a call resolves to, `check_inputs`, which refuses every misuse
before any model runs and returns the values the call uses, and the prompt's conditions (embeddings, text stream)."""

from dataclasses import dataclass

import numpy as np
import torch
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils import logging

from ...models import UniViGUModel
from ...schedulers import UniFlowScheduler
from ...utils.checks import all_finite, check_positive_int, describe_value, is_int
from ...utils.torch_utils import check_generator


logger = logging.get_logger(__name__)

OUTPUT_TYPES = ("np", "pil", "pt", "latent")


@dataclass(frozen=True)
class ResolvedInputs:
    """
    What [`~UniViGUPipeline.check_inputs`] returns: the values a call uses, each resolved once, with the pipeline
    and model config's defaults in place of `None`.

    Args:
        prompts (`list[str]` or `None`): the prompt(s) as a list (`None` without a prompt).
        height, width, num_frames (`int`): the video size ([`~UniViGUPipeline.resolve_size`]).
        num_inference_steps (`int`): the denoising steps.
        guidance_scale (`float`): the CFG scale (`<= 1`: no CFG).
        max_text_length (`int`): the caption length ([`~UniViGUPipeline.resolve_text_length`]).
        callback_on_step_end_tensor_inputs (`list[str]`): the tensors the step-end callback receives (a
            `PipelineCallback`'s own `tensor_inputs`, else the call's list).
    """

    prompts: list[str] | None
    height: int
    width: int
    num_frames: int
    num_inference_steps: int
    guidance_scale: float
    max_text_length: int
    callback_on_step_end_tensor_inputs: list[str]


class UniViGUPipelineInputsMixin:
    """`check_inputs`, `resolve_size` and `resolve_text_length` of [`UniViGUPipeline`], their helpers, and the
    prompt's conditions: its embeddings (with `encode_prompt`, as `WanPipeline`) and its text-stream tokens."""

    @staticmethod
    def _check_components(tokenizer, transformer, scheduler) -> None:
        """
        Checks the components the pipeline is built from: the transformer and scheduler types, and that the
        tokenizer's ids and the scheduler's source tokens fit the transformer's caption vocabulary. A component may be
        `None` (`from_pretrained(..., transformer=None, vae=None)` loads the others, e.g. to run `encode_prompt`
        alone); the tasks that need it then say so.
        """
        if transformer is not None and not isinstance(transformer, UniViGUModel):
            raise TypeError(f"transformer must be a UniViGUModel, got {type(transformer).__name__}")
        if scheduler is not None and not isinstance(scheduler, UniFlowScheduler):
            raise TypeError(f"scheduler must be a UniFlowScheduler, got {type(scheduler).__name__}")
        vocab = None if transformer is None else transformer.config.text_vocab_size
        if vocab is not None and tokenizer is not None and len(tokenizer) > vocab:
            raise ValueError(
                f"tokenizer does not match the transformer: it has {len(tokenizer)} tokens but text_vocab_size={vocab}; "
                f"the tokenizer must have at most text_vocab_size tokens (its ids index the caption embedding). Use the "
                "tokenizer the model was trained with, or grow the model with from_wan(..., text_vocab_size=len(tokenizer))"
            )
        scheduler_vocab = None if scheduler is None else scheduler.config.text_vocab_size
        if vocab is not None and scheduler_vocab is not None and scheduler_vocab > vocab:
            raise ValueError(
                f"scheduler does not match the transformer: its text_vocab_size={scheduler_vocab} exceeds the "
                f"transformer's text_vocab_size={vocab}; accepted: at most {vocab} (source tokens index the caption "
                "embedding)"
            )

    def resolve_size(self, height=None, width=None, num_frames=None) -> tuple[int, int, int]:
        """
        The video size a call uses: the given values, or the pipeline config's defaults, checked against the VAE and
        the transformer (height/width multiples of VAE factor x patch size, num_frames of the form 4k+1).

        Returns:
            `tuple[int, int, int]`: `(height, width, num_frames)`.
        """
        height = self.config.default_height if height is None else height
        width = self.config.default_width if width is None else width
        num_frames = self.config.default_num_frames if num_frames is None else num_frames
        patch = self.transformer.config.patch_size
        for name, value, multiple in (
            ("height", height, self.vae_scale_factor_spatial * patch[1]),
            ("width", width, self.vae_scale_factor_spatial * patch[2]),
        ):
            if not is_int(value) or value < multiple or value % multiple:
                raise ValueError(
                    f"{name} must be a positive multiple of {multiple} (VAE factor {self.vae_scale_factor_spatial} x "
                    f"patch size {multiple // self.vae_scale_factor_spatial}), got {value!r}"
                )
        temporal = self.vae_scale_factor_temporal * patch[0]
        if not is_int(num_frames) or num_frames < 1 or (num_frames - 1) % temporal:
            raise ValueError(
                f"num_frames must be {temporal}k+1 (1, {temporal + 1}, {2 * temporal + 1}, ...), got {num_frames!r}"
            )
        # The transformer's rotary tables cover `rope_max_seq_len` patches per axis: refuse a larger video here,
        # before the VAE encodes or the loop starts.
        positions = self.transformer.config.rope_max_seq_len
        spatial = self.vae_scale_factor_spatial
        for name, value, step in (
            ("height", height, spatial * patch[1]),
            ("width", width, spatial * patch[2]),
            ("num_frames", num_frames, temporal),
        ):
            largest = positions * step + (1 if name == "num_frames" else 0)
            if value > largest:
                raise ValueError(
                    f"{name} must be at most {largest} for this transformer (its rotary embedding covers "
                    f"rope_max_seq_len={positions} positions of {step} {'frames' if name == 'num_frames' else 'pixels'} "
                    f"each), got {value}"
                )
        return height, width, num_frames

    def resolve_text_length(self, max_text_length=None, for_training: bool = False) -> int:
        """
        The caption length a call uses: `max_text_length`, or the transformer's `max_text_length`, checked. For
        inference it is bounded by the transformer's `max_text_length`, the length it was trained on (text positions
        beyond it were never seen); preparing training data may go up to the tokenizer's `model_max_length`.
        """
        trained = self.transformer.config.max_text_length
        length = trained if max_text_length is None else max_text_length
        if for_training:
            limit = min(max(trained, getattr(self.tokenizer, "model_max_length", 0) or 0), 10**6)
            what = "the tokenizer's model_max_length"
        else:
            limit = trained
            what = "the transformer's max_text_length, the caption length it was trained on"
        if not is_int(length) or length < 1 or length > limit:
            raise ValueError(f"max_text_length must be an integer in [1, {limit}] ({what}), got {length!r}")
        return length

    def _warn_about_prompt_tokens(self, prompts: list[str], limit: int, argument: str, reader: str) -> None:
        """Warns (as diffusers' CLIP pipelines warn about truncation) when a prompt is cut at `limit` tokens or has
        words the tokenizer does not know (read as its unknown token): the result would silently ignore them."""
        if self.tokenizer is None or not prompts:
            return
        tokens = self.tokenizer(
            list(prompts), add_special_tokens=True, return_offsets_mapping=self.tokenizer.is_fast, truncation=False
        )
        unk = self.tokenizer.unk_token_id
        for index, (prompt, ids) in enumerate(zip(prompts, tokens.input_ids)):
            label = f"prompt[{index}]" if len(prompts) > 1 else "prompt"
            if len(ids) > limit:
                logger.warning(
                    f"{label} has {len(ids)} tokens; {reader} reads the first {limit} ({argument}={limit}), the rest "
                    "is ignored"
                )
            if unk is not None and unk in ids:
                spans = tokens.offset_mapping[index] if self.tokenizer.is_fast else []
                words = sorted({prompt[a:b] for token, (a, b) in zip(ids, spans) if token == unk and b > a})
                logger.warning(
                    f"{label} has {ids.count(unk)} token(s) the tokenizer does not know"
                    + (f" ({', '.join(map(repr, words))})" if words else "")
                    + f": {reader} reads them as {self.tokenizer.unk_token!r}"
                )

    def _check_max_sequence_length(self, max_sequence_length: int) -> None:
        """Refuses a prompt length the text encoder cannot take before any prompt is encoded (umT5 would otherwise
        try to allocate it)."""
        if self.tokenizer is None:
            return
        limit = max_sequence_length_limit(self.tokenizer)
        if max_sequence_length > limit:
            raise ValueError(
                f"max_sequence_length must be at most {limit} (the tokenizer's model_max_length: the longest prompt "
                f"the text encoder takes), got {max_sequence_length}"
            )

    def _resolve_steps(self, num_inference_steps) -> int:
        steps = self.config.default_num_inference_steps if num_inference_steps is None else num_inference_steps
        if not is_int(steps) or steps < 1:
            raise ValueError(f"num_inference_steps must be a positive integer, got {steps!r}")
        return steps

    def _resolve_guidance_scale(self, guidance_scale) -> float:
        if guidance_scale is None:
            guidance_scale = self.config.default_guidance_scale
        if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, (int, float, np.integer, np.floating)):
            raise TypeError(f"guidance_scale must be a number (<= 1 disables CFG), got {guidance_scale!r}")
        if not np.isfinite(guidance_scale):
            raise ValueError(f"guidance_scale must be a finite number (<= 1 disables CFG), got {guidance_scale!r}")
        return float(guidance_scale)

    @staticmethod
    def _prompt_list(prompt, name: str = "prompt") -> list[str]:
        if isinstance(prompt, str):
            return [prompt]
        if isinstance(prompt, (list, tuple)) and prompt and all(isinstance(p, str) for p in prompt):
            return list(prompt)
        if isinstance(prompt, (list, tuple)) and not prompt:
            raise ValueError(f"{name} must be a non-empty string or list of strings, got an empty list")
        raise TypeError(f"{name} must be a string or a list of strings, got {type(prompt).__name__} {prompt!r}"[:200])

    @staticmethod
    def _callback_tensor_names(callback_on_step_end, callback_on_step_end_tensor_inputs) -> list[str]:
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            return list(callback_on_step_end.tensor_inputs)
        return list(callback_on_step_end_tensor_inputs)

    def check_inputs(
        self,
        prompt=None,
        negative_prompt=None,
        height=None,
        width=None,
        num_frames=None,
        num_inference_steps=None,
        guidance_scale=None,
        output_type="np",
        num_videos_per_prompt=1,
        max_text_length=None,
        max_sequence_length=512,
        generator=None,
        latents=None,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=("latents",),
        prompt_embeds=None,
        negative_prompt_embeds=None,
        use_text_stream: bool = False,
    ) -> ResolvedInputs:
        """
        Checks the arguments of [`~UniViGUPipeline.generate_video`], [`~UniViGUPipeline.generate_joint`] and
        [`~UniViGUPipeline.caption`] before any model runs, raising a `ValueError`/`TypeError` that names the argument,
        what it accepts and what it got. `None` means "the default" for every size, step and length argument.

        Args:
            prompt: the prompt(s) (`None` for captioning without a prompt).
            prompt_embeds, negative_prompt_embeds (`torch.Tensor`, *optional*): instead of `prompt` /
                `negative_prompt` (one of each pair at most).
            use_text_stream (`bool`): whether the call puts the prompt's tokens in the text stream (needs `prompt`).
            *: the arguments of the task methods, with the same meaning.

        Returns:
            [`ResolvedInputs`]: the sizes, steps, guidance scale, caption length and callback tensors the call uses.
        """
        prompts = None if prompt is None else self._prompt_list(prompt)
        embeds_batch = self._check_prompt_embeds(
            prompt, negative_prompt, prompt_embeds, negative_prompt_embeds, use_text_stream
        )
        if use_text_stream and prompt is None:
            raise ValueError(
                "prompt is required with use_text_stream=True (its tokens sit in the text stream): pass the prompt "
                "together with prompt_embeds (only the tokenizer reads it, the text encoder does not run), or "
                "use_text_stream=False"
            )
        height, width, num_frames = self.resolve_size(height, width, num_frames)
        num_inference_steps = self._resolve_steps(num_inference_steps)
        guidance_scale = self._resolve_guidance_scale(guidance_scale)
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        check_positive_int("num_videos_per_prompt", num_videos_per_prompt)
        check_positive_int("max_sequence_length", max_sequence_length)
        self._check_max_sequence_length(max_sequence_length)
        max_text_length = self.resolve_text_length(max_text_length)
        if negative_prompt is not None:
            negative = self._prompt_list(negative_prompt, "negative_prompt")
            if prompts is not None and len(negative) not in (1, len(prompts)):
                raise ValueError(
                    f"negative_prompt has {len(negative)} entries but prompt has {len(prompts)}; they must match "
                    "(or give a single negative prompt)"
                )
        if callback_on_step_end is not None and not callable(callback_on_step_end):
            raise TypeError(
                "callback_on_step_end must be None, a callable `callback(pipe, step, timestep, tensors) -> dict`, a "
                f"PipelineCallback or MultiPipelineCallbacks, got {type(callback_on_step_end).__name__}"
            )
        names = self._callback_tensor_names(callback_on_step_end, callback_on_step_end_tensor_inputs)
        unknown = [k for k in names if k not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(
                f"callback_on_step_end_tensor_inputs must be in {self._callback_tensor_inputs}, got unknown {unknown}"
            )
        batch = None  # nothing to count the outputs by (captioning, which takes no latents)
        if prompts is not None:
            batch = len(prompts) * num_videos_per_prompt
        elif embeds_batch is not None:
            batch = embeds_batch * num_videos_per_prompt
        if generator is not None:
            # The type here; a list's length is checked where the noise is drawn (diffusers' `randn_tensor`), with
            # diffusers' message.
            check_generator(generator, None)
        if latents is not None:
            expected = (
                batch,
                self.transformer.config.in_channels,
                (num_frames - 1) // self.vae_scale_factor_temporal + 1,
                height // self.vae_scale_factor_spatial,
                width // self.vae_scale_factor_spatial,
            )
            if not isinstance(latents, torch.Tensor) or tuple(latents.shape) != expected:
                got = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
                raise ValueError(f"latents must have shape {expected} for this batch and video size, got {got}")
            if not latents.is_floating_point() or not all_finite(latents):
                raise ValueError(
                    f"latents must be a finite floating-point tensor (the initial noise), got "
                    f"{'NaN or inf values' if latents.is_floating_point() else f'dtype {latents.dtype}'}"
                )
        return ResolvedInputs(
            prompts=prompts,
            height=height,
            width=width,
            num_frames=num_frames,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            max_text_length=max_text_length,
            callback_on_step_end_tensor_inputs=names,
        )

    def _encode_conditions(
        self,
        prompts,
        negative_prompt,
        num_videos_per_prompt,
        max_sequence_length,
        device,
        cfg,
        prompt_embeds=None,
        negative_prompt_embeds=None,
    ):
        """The prompt (and, with CFG, negative) embeddings, one row per output: encoded, or the given ones repeated
        `num_videos_per_prompt` times."""
        negative = None
        if cfg and negative_prompt is not None:
            negative = self._prompt_list(negative_prompt, "negative_prompt")
            count = len(prompts) if prompts is not None else prompt_embeds.shape[0]
            if len(negative) == 1:  # one negative prompt for all
                negative = negative * count
        given = prompt_embeds
        if given is None:
            self._warn_about_prompt_tokens(prompts, max_sequence_length, "max_sequence_length", "the text encoder")
        prompt_embeds, negative_embeds = self.encode_prompt(
            prompt=prompts if given is None else None,
            negative_prompt=negative,
            do_classifier_free_guidance=cfg and negative_prompt_embeds is None,
            num_videos_per_prompt=num_videos_per_prompt,
            prompt_embeds=None if given is None else given.detach().to(device),
            max_sequence_length=max_sequence_length,
            device=device,
        )
        if given is not None:
            prompt_embeds = prompt_embeds.repeat_interleave(num_videos_per_prompt, dim=0)
        if cfg and negative_prompt_embeds is not None:
            negative_embeds = (
                negative_prompt_embeds.detach().to(device).repeat_interleave(num_videos_per_prompt, dim=0)
            )
        elif not cfg:
            negative_embeds = None
        dtype = self.transformer.dtype
        hint = (
            "The text encoder produced them: T5/umT5 encoders overflow in float16, load the text_encoder in bfloat16 "
            "or float32"
        )
        self._check_finite_output("prompt_embeds", prompt_embeds, hint=hint)
        self._check_finite_output("negative_prompt_embeds", negative_embeds, hint=hint)
        return prompt_embeds.to(dtype), None if negative_embeds is None else negative_embeds.to(dtype)

    def _tokenize_text_stream(self, *, prompts, num_videos_per_prompt, max_text_length, device):
        """The text stream of text-to-video: the prompts' token ids and attention mask, one row per output."""
        self._warn_about_prompt_tokens(prompts, max_text_length, "max_text_length", "the text stream")
        tokens = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=max_text_length,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        ids = tokens.input_ids.repeat_interleave(num_videos_per_prompt, dim=0).to(device)
        mask = tokens.attention_mask.repeat_interleave(num_videos_per_prompt, dim=0).to(device)
        vocab = self.transformer.config.text_vocab_size
        if int(ids.max()) >= vocab:
            raise ValueError(
                f"prompt contains token ids >= the transformer's text_vocab_size={vocab}: the tokenizer and the "
                "transformer do not match"
            )
        return ids, mask

    def _check_prompt_embeds(
        self, prompt, negative_prompt, prompt_embeds, negative_prompt_embeds, use_text_stream: bool = False
    ) -> int | None:
        """Checks the prompt/embedding pairs as `WanPipeline` does; returns the embeddings' batch size (or None).
        With the text stream, `prompt` may come with `prompt_embeds`: the prompt gives the stream's tokens, the
        embeddings the condition (one row per prompt)."""
        if prompt is not None and prompt_embeds is not None and not use_text_stream:
            raise ValueError(
                "prompt and prompt_embeds cannot both be given without the text stream; accepted: one of the two "
                "(with use_text_stream=True the prompt gives the text stream's tokens)"
            )
        if negative_prompt is not None and negative_prompt_embeds is not None:
            raise ValueError(
                "negative_prompt and negative_prompt_embeds cannot both be given; accepted: one of the two"
            )
        if prompt_embeds is None:
            if negative_prompt_embeds is not None and prompt is None:
                raise ValueError("negative_prompt_embeds needs prompt_embeds (or a prompt)")
            return None
        text_dim = None if self.transformer is None else self.transformer.config.text_dim
        for name, value in (("prompt_embeds", prompt_embeds), ("negative_prompt_embeds", negative_prompt_embeds)):
            if value is None:
                continue
            if not isinstance(value, torch.Tensor) or not value.is_floating_point() or value.ndim != 3:
                raise TypeError(
                    f"{name} must be a floating-point tensor of shape (batch, sequence, text_dim), got "
                    f"{describe_value(value)}"
                )
            if text_dim is not None and value.shape[2] != text_dim:
                raise ValueError(
                    f"{name} must have text_dim={text_dim} features (dim 2), got shape {tuple(value.shape)}"
                )
        prompt_count = None if prompt is None else len(self._prompt_list(prompt))
        if prompt_count is not None and prompt_count != prompt_embeds.shape[0]:
            raise ValueError(
                f"prompt_embeds must have one row per prompt ({prompt_count}), got {prompt_embeds.shape[0]}"
            )
        if negative_prompt_embeds is not None and negative_prompt_embeds.shape[0] != prompt_embeds.shape[0]:
            raise ValueError(
                f"negative_prompt_embeds must have the batch size of prompt_embeds ({prompt_embeds.shape[0]}), got "
                f"{negative_prompt_embeds.shape[0]}"
            )
        return prompt_embeds.shape[0]


# transformers' `model_max_length` when a tokenizer declares none; a prompt longer than this is not a prompt.
_UNDECLARED_MAX_LENGTH = 10**6
_FALLBACK_MAX_SEQUENCE_LENGTH = 4096


def max_sequence_length_limit(tokenizer) -> int:
    """The longest prompt the text encoder is given: the tokenizer's `model_max_length` (umT5 in Wan: 512), or 4096
    tokens (8x Wan's prompt length) when the tokenizer declares none."""
    declared = getattr(tokenizer, "model_max_length", None)
    if isinstance(declared, int) and 0 < declared < _UNDECLARED_MAX_LENGTH:
        return declared
    return _FALLBACK_MAX_SEQUENCE_LENGTH


def check_callback_tensor(name: str, value, current, step: int) -> None:
    """
    Checks a tensor that `callback_on_step_end` returned at `step` against the loop's tensor `current` it replaces.

    Raises:
        `TypeError` if it is not a tensor; `ValueError` if its shape, dtype or device differ, or it holds NaN/inf.
    """
    if current is None:
        return  # not one of the loop's tensors (or absent in this task): ignored, as diffusers' loops ignore it
    where = f"callback_on_step_end returned {name!r} at step {step}"
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{where} as {type(value).__name__}; return a torch.Tensor like the one it was given")
    for attribute in ("shape", "dtype", "device"):
        if getattr(value, attribute) != getattr(current, attribute):
            raise ValueError(
                f"{where} with {attribute} {_describe(getattr(value, attribute))}; it must keep the {attribute} of the "
                f"tensor it replaces, {_describe(getattr(current, attribute))}"
            )
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        raise ValueError(f"{where} with NaN or inf values; return finite values")


def _describe(value) -> str:
    return str(tuple(value)) if isinstance(value, torch.Size) else str(value)
