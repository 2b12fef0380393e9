"""`UniViGUPipeline`: text-to-video, video captioning and joint video+text generation with one diffusers pipeline."""

from collections.abc import Callable

import numpy as np
import torch
from diffusers import AutoencoderKLWan, DiffusionPipeline, WanPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils import logging
from diffusers.utils.torch_utils import get_module_execution_device
from diffusers.video_processor import VideoProcessor

from ...models import UniViGUModel
from ...schedulers import UniFlowScheduler
from ...utils.checks import all_finite, check_positive_int, is_int
from ...utils.torch_utils import check_generator, per_sample_generators
from .pipeline_captioning import UniViGUCaptioningMixin
from .pipeline_loading import UniViGUPipelineLoadingMixin
from .pipeline_output import UniViGUPipelineOutput


logger = logging.get_logger(__name__)

TASKS = ("t2v", "v2t", "joint")
OUTPUT_TYPES = ("np", "pil", "pt", "latent")
_NON_FINITE_HINT = (
    "The model produced them: float16 activations can overflow (use bfloat16 or float32: torch_dtype=...), the "
    "weights may come from a diverged training run (check them for NaN), or the inputs were out of range"
)


class UniViGUPipeline(UniViGUPipelineLoadingMixin, UniViGUCaptioningMixin, DiffusionPipeline):
    r"""
    Uni-ViGU: one Wan2.1-based transformer that generates video from text ([`~UniViGUPipeline.generate_video`]),
    captions video ([`~UniViGUPipeline.caption`]) and generates both together ([`~UniViGUPipeline.generate_joint`]).

    Args:
        vae ([`AutoencoderKLWan`]): the Wan video VAE.
        text_encoder ([`~transformers.UMT5EncoderModel`] or any T5-style encoder): encodes prompts for the
            cross-attention.
        tokenizer ([`~transformers.PreTrainedTokenizerBase`]): the prompt tokenizer; its ids are also the caption
            vocabulary of the text stream (as in the official release).
        transformer ([`UniViGUModel`]): the unified transformer.
        scheduler ([`UniFlowScheduler`]): continuous flow for video, discrete flow for text.
        default_height, default_width, default_num_frames (`int`): video size used when a call gives none
            (Wan2.1: 480 x 832 x 81).
        default_num_inference_steps (`int`): denoising steps when a call gives none (official script: 50).
        default_guidance_scale (`float`): CFG scale for video when a call gives none (official run: 5.0).
        default_fps (`int`): frame rate for exported videos (official run: 16).
        normalize_latents (`bool`): whether latents are normalised with the VAE's `latents_mean`/`latents_std`
            (diffusers' Wan convention, default). The released official inference code does not normalise; set
            `False` for a checkpoint trained that way.
    """

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds", "text_ids"]

    # diffusers' own Wan prompt encoding and latent sampling: the video path is WanPipeline's by construction.
    _get_t5_prompt_embeds = WanPipeline._get_t5_prompt_embeds
    encode_prompt = WanPipeline.encode_prompt
    prepare_latents = WanPipeline.prepare_latents

    def __init__(
        self,
        vae: AutoencoderKLWan,
        text_encoder,
        tokenizer,
        transformer: UniViGUModel,
        scheduler: UniFlowScheduler,
        default_height: int = 480,
        default_width: int = 832,
        default_num_frames: int = 81,
        default_num_inference_steps: int = 50,
        default_guidance_scale: float = 5.0,
        default_fps: int = 16,
        normalize_latents: bool = True,
    ):
        super().__init__()
        if not isinstance(transformer, UniViGUModel):
            raise TypeError(f"transformer must be a UniViGUModel, got {type(transformer).__name__}")
        if not isinstance(scheduler, UniFlowScheduler):
            raise TypeError(f"scheduler must be a UniFlowScheduler, got {type(scheduler).__name__}")
        vocab = transformer.config.text_vocab_size
        if tokenizer is not None and len(tokenizer) > vocab:
            raise ValueError(
                f"tokenizer does not match the transformer: it has {len(tokenizer)} tokens but text_vocab_size={vocab}; "
                f"the tokenizer must have at most text_vocab_size tokens (its ids index the caption embedding). Use the "
                "tokenizer the model was trained with, or grow the model with from_wan(..., text_vocab_size=len(tokenizer))"
            )
        scheduler_vocab = scheduler.config.text_vocab_size
        if scheduler_vocab is not None and scheduler_vocab > vocab:
            raise ValueError(
                f"scheduler does not match the transformer: its text_vocab_size={scheduler_vocab} exceeds the "
                f"transformer's text_vocab_size={vocab}; accepted: at most {vocab} (source tokens index the caption "
                "embedding)"
            )
        self.register_modules(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer, scheduler=scheduler
        )
        self.register_to_config(
            default_height=default_height,
            default_width=default_width,
            default_num_frames=default_num_frames,
            default_num_inference_steps=default_num_inference_steps,
            default_guidance_scale=default_guidance_scale,
            default_fps=default_fps,
            normalize_latents=normalize_latents,
        )
        self.vae_scale_factor_temporal = self.vae.config.scale_factor_temporal if getattr(self, "vae", None) else 4
        self.vae_scale_factor_spatial = self.vae.config.scale_factor_spatial if getattr(self, "vae", None) else 8
        self.video_processor = VideoProcessor(vae_scale_factor=self.vae_scale_factor_spatial)

    # ----------------------------------------------------------------------------------------------------------------
    # Memory helpers (diffusers conventions)
    # ----------------------------------------------------------------------------------------------------------------
    def enable_vae_slicing(self):
        """Decode/encode the batch one video at a time (less memory)."""
        self.vae.enable_slicing()

    def disable_vae_slicing(self):
        self.vae.disable_slicing()

    def enable_vae_tiling(self):
        """Decode/encode in spatial tiles (less memory for large videos)."""
        self.vae.enable_tiling()

    def disable_vae_tiling(self):
        self.vae.disable_tiling()

    # ----------------------------------------------------------------------------------------------------------------
    # Properties used by callbacks (as WanPipeline)
    # ----------------------------------------------------------------------------------------------------------------
    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        return self._guidance_scale > 1.0

    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    @property
    def current_timestep(self):
        return self._current_timestep

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    # ----------------------------------------------------------------------------------------------------------------
    # Input handling
    # ----------------------------------------------------------------------------------------------------------------
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
        return height, width, num_frames

    def resolve_text_length(self, max_text_length=None) -> int:
        """The caption length a call uses: `max_text_length`, or the transformer's `max_text_length`, checked."""
        length = self.transformer.config.max_text_length if max_text_length is None else max_text_length
        limit = max(self.transformer.config.max_text_length, getattr(self.tokenizer, "model_max_length", 0) or 0)
        limit = min(limit, 10**6)
        if not is_int(length) or length < 1 or length > limit:
            raise ValueError(f"max_text_length must be an integer in [1, {limit}] (the model's limit), got {length!r}")
        return length

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
        batch_size: int | None = None,
    ) -> None:
        """
        Checks the arguments of [`~UniViGUPipeline.generate_video`], [`~UniViGUPipeline.generate_joint`] and
        [`~UniViGUPipeline.caption`] before any model runs, raising a `ValueError`/`TypeError` that names the argument,
        what it accepts and what it got. `None` means "the default" for every size, step and length argument.

        Args:
            prompt: the prompt(s) (`None` for captioning without a prompt).
            batch_size (`int`, *optional*): the number of outputs when there is no prompt to count them (the number of
                videos to caption); with a prompt it is `len(prompt) * num_videos_per_prompt`.
            *: the arguments of the task methods, with the same meaning.
        """
        prompts = None if prompt is None else self._prompt_list(prompt)
        height, width, num_frames = self.resolve_size(height, width, num_frames)
        self._resolve_steps(num_inference_steps)
        self._resolve_guidance_scale(guidance_scale)
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        check_positive_int("num_videos_per_prompt", num_videos_per_prompt)
        check_positive_int("max_sequence_length", max_sequence_length)
        self.resolve_text_length(max_text_length)
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
        batch = len(prompts) * num_videos_per_prompt if prompts is not None else batch_size
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

    def _guided_forward(
        self, latents, video_timestep, text_ids, text_timestep, text_mask, prompt_embeds, negative_prompt_embeds
    ):
        """The transformer on the prompt condition, plus CFG on the video velocity (as WanPipeline) when enabled."""
        velocity, logits = self.transformer(
            video_latents=latents,
            text_ids=text_ids,
            video_timestep=video_timestep,
            text_timestep=text_timestep,
            encoder_hidden_states=prompt_embeds,
            text_attention_mask=text_mask,
            return_dict=False,
        )
        if self.do_classifier_free_guidance:
            uncond = self.transformer(
                video_latents=latents,
                text_ids=text_ids,
                video_timestep=video_timestep,
                text_timestep=text_timestep,
                encoder_hidden_states=negative_prompt_embeds,
                text_attention_mask=text_mask,
                return_dict=False,
            )[0]
            velocity = uncond + self._guidance_scale * (velocity - uncond)
        return velocity, logits

    def _encode_conditions(self, prompts, negative_prompt, num_videos_per_prompt, max_sequence_length, device, cfg):
        negative = None
        if cfg and negative_prompt is not None:
            negative = self._prompt_list(negative_prompt, "negative_prompt")
            if len(negative) == 1 and len(prompts) > 1:
                negative = negative * len(prompts)
        prompt_embeds, negative_embeds = self.encode_prompt(
            prompt=prompts,
            negative_prompt=negative,
            do_classifier_free_guidance=cfg,
            num_videos_per_prompt=num_videos_per_prompt,
            max_sequence_length=max_sequence_length,
            device=device,
        )
        dtype = self.transformer.dtype
        hint = (
            "The text encoder produced them: T5/umT5 encoders overflow in float16, load the text_encoder in bfloat16 "
            "or float32"
        )
        self._check_finite_output("prompt_embeds", prompt_embeds, hint=hint)
        self._check_finite_output("negative_prompt_embeds", negative_embeds, hint=hint)
        return prompt_embeds.to(dtype), None if negative_embeds is None else negative_embeds.to(dtype)

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
            f"{name} contains NaN or inf values ({bad} of {tensor.numel()}){where}. {hint or _NON_FINITE_HINT}."
        )

    def _tokenize_text_stream(self, prompts, num_videos_per_prompt, max_text_length, device):
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

    def _run_callback(self, callback, step, timestep, names, tensors):
        outputs = callback(self, step, timestep, {k: tensors[k] for k in names})
        return outputs or {}

    def _prepare_generation(
        self,
        prompt,
        negative_prompt,
        height,
        width,
        num_frames,
        num_inference_steps,
        guidance_scale,
        output_type,
        num_videos_per_prompt,
        max_text_length,
        max_sequence_length,
        generator,
        latents,
        callback_on_step_end,
        callback_on_step_end_tensor_inputs,
        text_time_schedule,
    ):
        """
        The shared start of the video-generating tasks: [`check_inputs`], then the loop state, the prompt
        embeddings, the timesteps and the initial noise.

        Returns:
            `(prompts, prompt_embeds, negative_prompt_embeds, latents, callback_on_step_end_tensor_inputs)`.
        """
        self.check_inputs(
            prompt,
            negative_prompt,
            height,
            width,
            num_frames,
            num_inference_steps,
            guidance_scale,
            output_type,
            num_videos_per_prompt,
            max_text_length,
            max_sequence_length,
            generator,
            latents,
            callback_on_step_end,
            callback_on_step_end_tensor_inputs,
        )
        prompts = self._prompt_list(prompt)
        height, width, num_frames = self.resolve_size(height, width, num_frames)
        steps = self._resolve_steps(num_inference_steps)
        self._guidance_scale, self._interrupt, self._current_timestep = (
            self._resolve_guidance_scale(guidance_scale),
            False,
            None,
        )
        device, batch = self._execution_device, len(prompts) * num_videos_per_prompt
        prompt_embeds, negative_prompt_embeds = self._encode_conditions(
            prompts,
            negative_prompt,
            num_videos_per_prompt,
            max_sequence_length,
            device,
            self.do_classifier_free_guidance,
        )
        self.scheduler.set_timesteps(steps, device=device, text_time_schedule=text_time_schedule)
        latents = self.prepare_latents(
            batch,
            self.transformer.config.in_channels,
            height,
            width,
            num_frames,
            torch.float32,
            device,
            generator,
            latents,
        )
        names = self._callback_tensor_names(callback_on_step_end, callback_on_step_end_tensor_inputs)
        return prompts, prompt_embeds, negative_prompt_embeds, latents, names

    def _denoise(
        self,
        latents,
        prompt_embeds,
        negative_prompt_embeds,
        text_ids,
        text_mask,
        generators,
        denoise_text: bool,
        callback_on_step_end,
        callback_on_step_end_tensor_inputs,
    ):
        """
        The denoising loop of text-to-video and joint generation: the video takes the scheduler's Euler steps (with
        CFG, as `WanPipeline`); with `denoise_text` the text stream runs from noise on `scheduler.text_times`, else it
        holds `text_ids` clean at text time 1 (timestep 0), or is absent.
        """
        timesteps, text_times = self.scheduler.timesteps, self.scheduler.text_times
        batch = latents.shape[0]
        device = latents.device
        transformer_dtype = self.transformer.dtype
        text_timestep = None if text_ids is None else torch.zeros(batch, device=device)
        self._num_timesteps = len(timesteps)
        self.scheduler.set_begin_index(0)
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    continue
                self._current_timestep = t
                if denoise_text:
                    text_timestep = self.scheduler.text_time_to_timestep(text_times[i]).expand(batch).to(device)
                noise_pred, logits = self._guided_forward(
                    latents.to(transformer_dtype),
                    t.expand(batch),
                    text_ids,
                    text_timestep,
                    text_mask,
                    prompt_embeds,
                    negative_prompt_embeds,
                )
                latents = self.scheduler.step(noise_pred, t, latents, return_dict=False)[0]
                self._check_finite_output("latents", latents, step=i)
                if denoise_text:
                    self._check_finite_output("text_logits", logits, step=i)
                    text_ids = self._step_text(logits, text_times[i], text_ids, generators, text_times[i + 1])
                if callback_on_step_end is not None:
                    tensors = {
                        "latents": latents,
                        "prompt_embeds": prompt_embeds,
                        "negative_prompt_embeds": negative_prompt_embeds,
                        "text_ids": text_ids,
                    }
                    outputs = self._run_callback(
                        callback_on_step_end, i, t, callback_on_step_end_tensor_inputs, tensors
                    )
                    latents = outputs.pop("latents", latents)
                    prompt_embeds = outputs.pop("prompt_embeds", prompt_embeds)
                    negative_prompt_embeds = outputs.pop("negative_prompt_embeds", negative_prompt_embeds)
                    text_ids = outputs.pop("text_ids", text_ids)
                progress_bar.update()
        self._current_timestep = None
        return latents, text_ids

    # ----------------------------------------------------------------------------------------------------------------
    # Text -> video
    # ----------------------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate_video(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        height: int | None = None,
        width: int | None = None,
        num_frames: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        num_videos_per_prompt: int = 1,
        use_text_stream: bool = True,
        max_text_length: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ("latents",),
        max_sequence_length: int = 512,
    ) -> UniViGUPipelineOutput | tuple:
        r"""
        Generates videos from prompts (text→video).

        As in the official release, the clean tokenized prompt sits in the text stream at text time 0 (the video
        attends to it); `use_text_stream=False` drops the stream, which makes this exactly diffusers' `WanPipeline`.

        Args:
            prompt (`str` or `list[str]`): the prompt(s).
            negative_prompt (`str` or `list[str]`, *optional*): negative prompt(s) for CFG (default: empty string).
            height, width, num_frames (`int`, *optional*): video size; defaults from the pipeline config. height and
                width must be multiples of VAE factor x patch size (16 for Wan), num_frames of the form 4k+1.
            num_inference_steps (`int`, *optional*): denoising steps (pipeline config default).
            guidance_scale (`float`, *optional*): CFG scale on the video; `<= 1` disables CFG (config default).
            num_videos_per_prompt (`int`, defaults to 1): videos per prompt.
            use_text_stream (`bool`, defaults to `True`): keep the prompt tokens in the text stream.
            max_text_length (`int`, *optional*): text-stream length (model config `max_text_length`).
            generator (`torch.Generator` or list, *optional*): RNG(s); a list must have one per video.
            latents (`torch.Tensor`, *optional*): initial noise `(batch, 16, latent_frames, h/8, w/8)`.
            output_type (`str`, defaults to `"np"`): "np", "pil", "pt" or "latent".
            return_dict (`bool`, defaults to `True`): return a [`UniViGUPipelineOutput`] instead of a tuple.
            callback_on_step_end (`Callable`, *optional*): called as `callback(pipe, step, timestep, kwargs)` after each
                step; may return replacements for the tensors it received.
            callback_on_step_end_tensor_inputs (`list[str]`): tensors passed to the callback, from
                `_callback_tensor_inputs`.
            max_sequence_length (`int`, defaults to 512): T5 prompt length (Wan: 512).

        Returns:
            [`UniViGUPipelineOutput`] with `frames` (and `text=None`), or `(frames,)`.
        """
        prompts, prompt_embeds, negative_prompt_embeds, latents, callback_on_step_end_tensor_inputs = (
            self._prepare_generation(
                prompt,
                negative_prompt,
                height,
                width,
                num_frames,
                num_inference_steps,
                guidance_scale,
                output_type,
                num_videos_per_prompt,
                max_text_length if use_text_stream else None,
                max_sequence_length,
                generator,
                latents,
                callback_on_step_end,
                callback_on_step_end_tensor_inputs,
                text_time_schedule="uniform",
            )
        )
        text_ids = text_mask = None
        if use_text_stream:
            text_ids, text_mask = self._tokenize_text_stream(
                prompts, num_videos_per_prompt, self.resolve_text_length(max_text_length), latents.device
            )
        latents, _ = self._denoise(
            latents,
            prompt_embeds,
            negative_prompt_embeds,
            text_ids,
            text_mask,
            None,
            False,
            callback_on_step_end,
            callback_on_step_end_tensor_inputs,
        )
        frames = self._decode(latents, output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (frames,)
        return UniViGUPipelineOutput(frames=frames, text=None)

    # ----------------------------------------------------------------------------------------------------------------
    # Joint generation
    # ----------------------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate_joint(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        height: int | None = None,
        width: int | None = None,
        num_frames: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        num_videos_per_prompt: int = 1,
        max_text_length: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ("latents",),
        max_sequence_length: int = 512,
    ) -> UniViGUPipelineOutput | tuple:
        r"""
        Generates videos and their captions together from prompts: both start from noise and are denoised with
        synchronised times (text time `1 - sigma` of the video; `text_time_schedule="video"`). CFG (negative prompt)
        applies to the video, as in the official release; the text follows the conditional pass.

        Args: as [`~UniViGUPipeline.generate_video`] plus `max_text_length` (caption tokens). A list of generators
        seeds each video's noise and caption noise.

        Returns:
            [`UniViGUPipelineOutput`] with `frames` and `text`, or `(frames, text)`.
        """
        _, prompt_embeds, negative_prompt_embeds, latents, callback_on_step_end_tensor_inputs = (
            self._prepare_generation(
                prompt,
                negative_prompt,
                height,
                width,
                num_frames,
                num_inference_steps,
                guidance_scale,
                output_type,
                num_videos_per_prompt,
                max_text_length,
                max_sequence_length,
                generator,
                latents,
                callback_on_step_end,
                callback_on_step_end_tensor_inputs,
                text_time_schedule="video",
            )
        )
        length = self.resolve_text_length(max_text_length)
        batch = latents.shape[0]
        generators = per_sample_generators(generator, batch)
        text_ids = self._sample_text_source(batch, length, generators, latents.device)
        latents, text_ids = self._denoise(
            latents,
            prompt_embeds,
            negative_prompt_embeds,
            text_ids,
            None,
            generators,
            True,
            callback_on_step_end,
            callback_on_step_end_tensor_inputs,
        )
        frames = self._decode(latents, output_type)
        text = self._decode_text(text_ids)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (frames, text)
        return UniViGUPipelineOutput(frames=frames, text=text)

    # ----------------------------------------------------------------------------------------------------------------
    # Dispatch
    # ----------------------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, task: str = "t2v", **kwargs) -> UniViGUPipelineOutput | tuple:
        r"""
        Runs one of the three tasks.

        Args:
            task (`str`, defaults to `"t2v"`): `"t2v"` ([`~UniViGUPipeline.generate_video`]), `"v2t"`
                ([`~UniViGUPipeline.caption`]) or `"joint"` ([`~UniViGUPipeline.generate_joint`]).
            **kwargs: the arguments of that method.

        Returns:
            [`UniViGUPipelineOutput`] (`frames` and/or `text`; the unused field is `None`) or a tuple.
        """
        if task == "t2v":
            return self.generate_video(**kwargs)
        if task == "v2t":
            return self.caption(**kwargs)
        if task == "joint":
            return self.generate_joint(**kwargs)
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")


# --------------------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------------------


__all__ = ["UniViGUPipeline", "UniViGUPipelineOutput"]
