"""`UniViGUPipeline`: text-to-video, video captioning and joint video+text generation with one diffusers pipeline."""

from collections.abc import Callable

import torch
from diffusers import AutoencoderKLWan, DiffusionPipeline, WanPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils import logging
from diffusers.video_processor import VideoProcessor

from ...models import UniViGUModel
from ...schedulers import UniFlowScheduler
from ...utils.torch_utils import per_sample_generators
from .pipeline_captioning import UniViGUCaptioningMixin
from .pipeline_inputs import UniViGUPipelineInputsMixin, check_callback_tensor
from .pipeline_loading import UniViGUPipelineLoadingMixin
from .pipeline_lora import UniViGULoraLoaderMixin
from .pipeline_output import UniViGUPipelineOutput, UniViGUPipelineOutputMixin


logger = logging.get_logger(__name__)


class UniViGUPipeline(
    UniViGUPipelineLoadingMixin,
    UniViGUPipelineInputsMixin,
    UniViGUPipelineOutputMixin,
    UniViGUCaptioningMixin,
    UniViGULoraLoaderMixin,
    DiffusionPipeline,
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
        self._check_components(tokenizer=tokenizer, transformer=transformer, scheduler=scheduler)
        if transformer is not None and scheduler is not None and scheduler.config.text_vocab_size is None:
            # A scheduler built without the vocabulary (`UniFlowScheduler(shift=3.0)`) draws from the transformer's.
            scheduler.register_to_config(text_vocab_size=transformer.config.text_vocab_size)
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
    # VAE memory helpers: deprecated, as diffusers deprecated them (its pipelines now leave them to `pipe.vae`)
    # ----------------------------------------------------------------------------------------------------------------
    def _deprecated_vae_method(self, method: str, vae_method: str) -> None:
        import warnings

        warnings.warn(
            f"Calling `{method}()` on a `{self.__class__.__name__}` is deprecated and this method will be removed in a "
            f"future version. Please use `pipe.vae.{vae_method}()`.",
            FutureWarning,
            stacklevel=3,
        )

    def enable_vae_slicing(self):
        """Deprecated: use `pipe.vae.enable_slicing()` (decodes/encodes the batch one video at a time)."""
        self._deprecated_vae_method("enable_vae_slicing", "enable_slicing")
        self.vae.enable_slicing()

    def disable_vae_slicing(self):
        """Deprecated: use `pipe.vae.disable_slicing()`."""
        self._deprecated_vae_method("disable_vae_slicing", "disable_slicing")
        self.vae.disable_slicing()

    def enable_vae_tiling(self):
        """Deprecated: use `pipe.vae.enable_tiling()` (decodes/encodes in spatial tiles: less memory for large
        videos)."""
        self._deprecated_vae_method("enable_vae_tiling", "enable_tiling")
        self.vae.enable_tiling()

    def disable_vae_tiling(self):
        """Deprecated: use `pipe.vae.disable_tiling()`."""
        self._deprecated_vae_method("disable_vae_tiling", "disable_tiling")
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
        *,
        latents,
        video_timestep,
        text_ids,
        text_timestep,
        text_mask,
        prompt_embeds,
        negative_prompt_embeds,
        step_index: int,
    ):
        """The transformer on the prompt condition, plus CFG on the video velocity when enabled; each call in its
        diffusers cache context (`"cond"` / `"uncond"`, with where the loop is), as `WanPipeline`."""
        cache_context_kwargs = {
            "step_index": step_index,
            "sigma": float(self.scheduler.sigmas[step_index]),
            "num_inference_steps": self._num_timesteps,
        }

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

        with self.transformer.cache_context("cond", **cache_context_kwargs):
            velocity, logits = forward(prompt_embeds)
        if self.do_classifier_free_guidance:
            with self.transformer.cache_context("uncond", **cache_context_kwargs):
                uncond = forward(negative_prompt_embeds)[0]
            velocity = uncond + self._guidance_scale * (velocity - uncond)
        return velocity, logits

    def _start_call(self, inputs) -> None:
        """The per-call state callbacks read (`guidance_scale`, `current_timestep`, `interrupt`), reset for a call."""
        self._guidance_scale = inputs.guidance_scale
        self._current_timestep = None
        self._interrupt = False

    def _initial_latents(self, inputs, batch_size: int, device, generator, latents) -> torch.Tensor:
        """`WanPipeline.prepare_latents` for the resolved size: fp32 noise (or the given `latents`, checked)."""
        return self.prepare_latents(
            batch_size=batch_size,
            num_channels_latents=self.transformer.config.in_channels,
            height=inputs.height,
            width=inputs.width,
            num_frames=inputs.num_frames,
            dtype=torch.float32,
            device=device,
            generator=generator,
            latents=latents,
        )

    def _run_callback(self, callback, step, timestep, tensor_inputs, tensors: dict) -> dict:
        """
        The `callback_on_step_end` handling of every denoising loop, as `WanPipeline`'s: `callback(self, step,
        timestep, kwargs)` gets the tensors of `tensors` named in `tensor_inputs`, and may return replacements.

        Returns:
            `dict`: `tensors`, in its order, with the callback's replacements in place (a callback that returns `None`
            or other names changes nothing; without a callback, `tensors` as given).

        Raises:
            `ValueError` / `TypeError` when a returned tensor differs from the one it replaces in shape, dtype or
            device, or holds NaN/inf: the loop would otherwise go on with a video or caption of another size.
        """
        if callback is None:
            return tensors
        outputs = callback(self, step, timestep, {name: tensors[name] for name in tensor_inputs}) or {}
        for name, value in outputs.items():
            check_callback_tensor(name, value, tensors.get(name), step)
        return {name: outputs.get(name, value) for name, value in tensors.items()}

    def _denoise(
        self,
        latents,
        *,
        prompt_embeds,
        negative_prompt_embeds,
        text_ids=None,
        text_mask=None,
        denoise_text: bool = False,
        generators=None,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=(),
    ):
        """
        The denoising loop of text-to-video and joint generation: the video takes the scheduler's Euler steps (with
        CFG, as `WanPipeline`); with `denoise_text` the text stream runs from noise on `scheduler.text_times` (drawn
        with `generators`), else it holds `text_ids` clean at text time 1 (timestep 0), or is absent.

        Returns:
            `(latents, text_ids)` after the last step (or where `pipe._interrupt` stopped the loop).
        """
        timesteps, text_times = self.scheduler.timesteps, self.scheduler.text_times
        batch = latents.shape[0]
        device = latents.device
        transformer_dtype = self.transformer.dtype
        text_timestep = None if text_ids is None else torch.zeros(batch, device=device)
        committed = None  # the text positions committed so far (confidence decoding only)
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
                    latents=latents.to(transformer_dtype),
                    video_timestep=t.expand(batch),
                    text_ids=text_ids,
                    text_timestep=text_timestep,
                    text_mask=text_mask,
                    prompt_embeds=prompt_embeds,
                    negative_prompt_embeds=negative_prompt_embeds,
                    step_index=i,
                )
                latents = self.scheduler.step(noise_pred, t, latents, return_dict=False)[0]
                self._check_finite_output("latents", latents, step=i)
                if denoise_text and not (committed is not None and bool(committed.all())):
                    # (once confidence decoding has committed every position, the text stays as it is)
                    self._check_finite_output("text_logits", logits, step=i)
                    text_ids, committed = self._step_text(
                        logits, text_times[i], text_ids, generators, text_times[i + 1], committed
                    )
                tensors = {
                    "latents": latents,
                    "prompt_embeds": prompt_embeds,
                    "negative_prompt_embeds": negative_prompt_embeds,
                    "text_ids": text_ids,
                }
                tensors = self._run_callback(callback_on_step_end, i, t, callback_on_step_end_tensor_inputs, tensors)
                latents, prompt_embeds, negative_prompt_embeds, text_ids = tensors.values()
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
        # 1. Check inputs; every `None` size, step and scale resolves here, once
        inputs = self.check_inputs(
            prompt=prompt,
            negative_prompt=negative_prompt,
            height=height,
            width=width,
            num_frames=num_frames,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            output_type=output_type,
            num_videos_per_prompt=num_videos_per_prompt,
            max_text_length=max_text_length if use_text_stream else None,
            max_sequence_length=max_sequence_length,
            generator=generator,
            latents=latents,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            use_text_stream=use_text_stream,
        )
        self._start_call(inputs)
        device = self._execution_device

        # 2. Encode input prompt
        prompt_embeds, negative_prompt_embeds = self._encode_conditions(
            prompts=inputs.prompts,
            negative_prompt=negative_prompt,
            num_videos_per_prompt=num_videos_per_prompt,
            max_sequence_length=max_sequence_length,
            device=device,
            cfg=self.do_classifier_free_guidance,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
        )

        # 3. Prepare timesteps (the text stream stays clean: its grid is unused)
        self.scheduler.set_timesteps(inputs.num_inference_steps, device=device, text_time_schedule="uniform")

        # 4. Prepare latent variables
        latents = self._initial_latents(inputs, prompt_embeds.shape[0], device, generator, latents)

        # 5. Prepare the text stream: the clean prompt tokens
        text_ids = text_mask = None
        if use_text_stream:
            text_ids, text_mask = self._tokenize_text_stream(
                prompts=inputs.prompts,
                num_videos_per_prompt=num_videos_per_prompt,
                max_text_length=inputs.max_text_length,
                device=device,
            )

        # 6. Denoising loop
        latents, _ = self._denoise(
            latents,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            text_ids=text_ids,
            text_mask=text_mask,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=inputs.callback_on_step_end_tensor_inputs,
        )

        # 7. Decode
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
        # 1. Check inputs; every `None` size, step and scale resolves here, once
        inputs = self.check_inputs(
            prompt=prompt,
            negative_prompt=negative_prompt,
            height=height,
            width=width,
            num_frames=num_frames,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            output_type=output_type,
            num_videos_per_prompt=num_videos_per_prompt,
            max_text_length=max_text_length,
            max_sequence_length=max_sequence_length,
            generator=generator,
            latents=latents,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
        )
        self._start_call(inputs)
        device = self._execution_device

        # 2. Encode input prompt
        prompt_embeds, negative_prompt_embeds = self._encode_conditions(
            prompts=inputs.prompts,
            negative_prompt=negative_prompt,
            num_videos_per_prompt=num_videos_per_prompt,
            max_sequence_length=max_sequence_length,
            device=device,
            cfg=self.do_classifier_free_guidance,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
        )

        # 3. Prepare timesteps: text time 1 - sigma of the video's
        self.scheduler.set_timesteps(inputs.num_inference_steps, device=device, text_time_schedule="video")

        # 4. Prepare latent variables
        latents = self._initial_latents(inputs, prompt_embeds.shape[0], device, generator, latents)
        batch = latents.shape[0]

        # 5. Prepare the text stream: source noise, drawn per video with a list of generators
        generators = per_sample_generators(generator, batch)
        text_ids = self._sample_text_source(
            batch=batch, length=inputs.max_text_length, generators=generators, device=device
        )

        # 6. Denoising loop
        latents, text_ids = self._denoise(
            latents,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            text_ids=text_ids,
            denoise_text=True,
            generators=generators,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=inputs.callback_on_step_end_tensor_inputs,
        )

        # 7. Decode
        frames = self._decode(latents, output_type)
        text = self._decode_text(text_ids)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (frames, text)
        return UniViGUPipelineOutput(frames=frames, text=text)


__all__ = ["UniViGUPipeline", "UniViGUPipelineOutput"]
