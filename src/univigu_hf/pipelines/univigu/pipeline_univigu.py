"""`UniViGUPipeline`: text-to-video, video captioning and joint video+text generation with one diffusers pipeline."""

from collections.abc import Callable

import torch
from diffusers import AutoencoderKLWan, DiffusionPipeline, WanPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils import logging
from diffusers.utils.torch_utils import get_module_execution_device
from diffusers.video_processor import VideoProcessor

from ...models import UniViGUModel
from ...schedulers import UniFlowScheduler
from ...utils.checks import all_finite
from ...utils.torch_utils import per_sample_generators
from .pipeline_captioning import UniViGUCaptioningMixin
from .pipeline_inputs import UniViGUPipelineInputsMixin
from .pipeline_loading import UniViGUPipelineLoadingMixin
from .pipeline_output import UniViGUPipelineOutput


logger = logging.get_logger(__name__)

_NON_FINITE_HINT = (
    "The model produced them: float16 activations can overflow (use bfloat16 or float32: torch_dtype=...), the "
    "weights may come from a diverged training run (check them for NaN), or the inputs were out of range"
)


class UniViGUPipeline(
    UniViGUPipelineLoadingMixin, UniViGUPipelineInputsMixin, UniViGUCaptioningMixin, DiffusionPipeline
):
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
        # A component may be None (diffusers' `from_pretrained(..., transformer=None, vae=None)` loads the others,
        # e.g. to run `encode_prompt` alone); the tasks that need it then say so.
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
        if vocab is not None and scheduler is not None and scheduler_vocab is None:
            # A scheduler built without the vocabulary (`UniFlowScheduler(shift=3.0)`) draws from the transformer's.
            scheduler.register_to_config(text_vocab_size=vocab)
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

    def _guided_forward(
        self,
        latents,
        video_timestep,
        text_ids,
        text_timestep,
        text_mask,
        prompt_embeds,
        negative_prompt_embeds,
        step_index: int,
    ):
        """The transformer on the prompt condition, plus CFG on the video velocity (as WanPipeline) when enabled; each
        call in its diffusers cache context (`"cond"` / `"uncond"`, with the step), as `WanPipeline`."""

        def forward(condition):
            return self.transformer(
                video_latents=latents,
                text_ids=text_ids,
                video_timestep=video_timestep,
                text_timestep=text_timestep,
                encoder_hidden_states=condition,
                text_attention_mask=text_mask,
                return_dict=False,
            )

        with self._cache_context("cond", step_index):
            velocity, logits = forward(prompt_embeds)
        if self.do_classifier_free_guidance:
            with self._cache_context("uncond", step_index):
                uncond = forward(negative_prompt_embeds)[0]
            velocity = uncond + self._guidance_scale * (velocity - uncond)
        return velocity, logits

    def _cache_context(self, name: str, step_index: int):
        """The transformer's `cache_context` (diffusers' cache hooks keep one state per context), with where the loop
        is, as `WanPipeline` passes it."""
        return self.transformer.cache_context(
            name,
            step_index=step_index,
            sigma=float(self.scheduler.sigmas[step_index]),
            num_inference_steps=self._num_timesteps,
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
        prompt_embeds=None,
        negative_prompt_embeds=None,
        use_text_stream=False,
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
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            use_text_stream=use_text_stream,
        )
        prompts = None if prompt is None else self._prompt_list(prompt)
        height, width, num_frames = self.resolve_size(height, width, num_frames)
        steps = self._resolve_steps(num_inference_steps)
        self._guidance_scale, self._interrupt, self._current_timestep = (
            self._resolve_guidance_scale(guidance_scale),
            False,
            None,
        )
        device = self._execution_device
        prompt_embeds, negative_prompt_embeds = self._encode_conditions(
            prompts,
            negative_prompt,
            num_videos_per_prompt,
            max_sequence_length,
            device,
            self.do_classifier_free_guidance,
            prompt_embeds,
            negative_prompt_embeds,
        )
        batch = prompt_embeds.shape[0]
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
                    step_index=i,
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
    def __call__(
        self,
        prompt: str | list[str] | None = None,
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
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ("latents",),
        max_sequence_length: int = 512,
    ) -> UniViGUPipelineOutput | tuple:
        r"""
        Generates videos from prompts (text→video): the pipeline's call, as `WanPipeline`'s; `generate_video` is the
        same method under the task's name. Captioning and joint generation are [`~UniViGUPipeline.caption`] and
        [`~UniViGUPipeline.generate_joint`].

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
            prompt_embeds, negative_prompt_embeds (`torch.Tensor`, *optional*): precomputed text-encoder embeddings
                `(batch, sequence, text_dim)` (from [`~UniViGUPipeline.encode_prompt`]) instead of `prompt` /
                `negative_prompt`, as in `WanPipeline`; each row gives `num_videos_per_prompt` videos. The text
                stream holds the prompt's tokens: pass `prompt` as well (only the tokenizer reads it; the pipeline
                may be loaded with `text_encoder=None`), or `use_text_stream=False`.
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
                prompt_embeds=prompt_embeds,
                negative_prompt_embeds=negative_prompt_embeds,
                use_text_stream=use_text_stream,
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

    generate_video = __call__

    # ----------------------------------------------------------------------------------------------------------------
    # Joint generation
    # ----------------------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate_joint(
        self,
        prompt: str | list[str] | None = None,
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
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
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

        Args: as [`~UniViGUPipeline.generate_video`] plus `max_text_length` (caption tokens); `prompt_embeds` work
        here without a prompt (the caption starts from noise). A list of generators seeds each video's noise and
        caption noise.

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
                prompt_embeds=prompt_embeds,
                negative_prompt_embeds=negative_prompt_embeds,
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


# --------------------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------------------


__all__ = ["UniViGUPipeline", "UniViGUPipelineOutput"]
