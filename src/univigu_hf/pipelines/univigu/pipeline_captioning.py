"""Video -> text with `UniViGUPipeline`: video preprocessing and encoding, and the discrete text denoising loop."""

from collections.abc import Callable

import torch
from diffusers.utils import logging
from diffusers.utils.torch_utils import get_module_execution_device

from ...utils.checks import is_int
from ...utils.torch_utils import per_sample_generators
from ..video_io import resize_and_center_crop, to_clips
from .pipeline_output import UniViGUPipelineOutput


logger = logging.get_logger(__name__)

VIDEO_CACHE_MODES = ("off", "exact", "approx")


class UniViGUCaptioningMixin:
    """`preprocess_video`, `encode_video` and `caption` of [`UniViGUPipeline`], and the text-stream sampling helpers
    that joint generation shares."""

    def preprocess_video(
        self, video, height: int | None = None, width: int | None = None, num_frames: int | None = None
    ) -> torch.Tensor:
        r"""
        Turns videos into a `(batch, 3, frames, height, width)` tensor in [-1, 1] that the VAE accepts.

        Accepted `video` layouts (one video, or a list of them for a batch):
        - a file path (`str`/`os.PathLike`, any format imageio-ffmpeg reads, e.g. mp4, gif, webm);
        - a list of `PIL.Image.Image` frames;
        - a `np.ndarray` `(frames, height, width, 3)` or `(batch, frames, height, width, 3)`, `uint8` in [0, 255] or
          float in [0, 1];
        - a `torch.Tensor` `(frames, 3, height, width)` or `(batch, frames, 3, height, width)`, float in [0, 1]
          (the layout of `output_type="pt"`).

        - a [`~univigu_hf.pipelines.video_io.VideoClip`] (what `video_io.to_clips` returns).

        Frames are resized (aspect ratio kept) to cover `height x width` and center-cropped (defaults: the pipeline
        config). Each video is cut to `num_frames` frames taken evenly spaced over the clip (default, per video: the
        most frames of the form 4k+1 it has, at most the config's `default_num_frames`). Only the chosen frames are
        decoded and converted, so memory does not grow with the clip's length.

        Returns:
            `torch.Tensor`: `(batch, 3, num_frames, height, width)` float32 in [-1, 1]. Videos whose default frame
            counts differ cannot share one tensor: pass `num_frames` (or caption them, which handles it).
        """
        pixels = self._preprocess_clips(video, height, width, num_frames)
        counts = sorted({clip.shape[1] for clip in pixels})
        if len(counts) > 1:
            raise ValueError(
                f"the videos give different frame counts {counts} (each takes the most frames of the form 4k+1 it "
                "has); pass num_frames (at most the smallest) to bring them to one tensor"
            )
        return torch.stack(pixels)

    def _preprocess_clips(self, video, height, width, num_frames) -> list[torch.Tensor]:
        """[`preprocess_video`] per video: a list of `(3, frames, height, width)` tensors in [-1, 1]."""
        height, width, _ = self.resolve_size(height, width, 1)
        if num_frames is not None:
            _, _, num_frames = self.resolve_size(height, width, num_frames)
        temporal = self.vae_scale_factor_temporal * self.transformer.config.patch_size[0]
        processed = []
        for clip in to_clips(video):
            count = num_frames
            if count is None:
                count = min((clip.num_frames - 1) // temporal * temporal + 1, self.config.default_num_frames)
                if count < self.config.default_num_frames:
                    logger.warning(
                        f"video {clip.source} has {clip.num_frames} frames, so {count} are used: fewer than the "
                        f"{self.config.default_num_frames} this pipeline takes by default (default_num_frames); a "
                        "model trained on longer clips may caption it poorly"
                    )
            elif clip.num_frames < count:
                raise ValueError(
                    f"video has {clip.num_frames} frames but num_frames={count} were requested; accepted: "
                    f"num_frames <= {clip.num_frames} of the form 4k+1, or None (the most each video allows)"
                )
            index = torch.linspace(0, clip.num_frames - 1, count).round().long()
            # Resized frame by frame as a file is decoded: memory holds the chosen frames at the model's size.
            frames = clip.read(index, transform=lambda chosen: resize_and_center_crop(chosen, height, width))
            processed.append(frames.permute(1, 0, 2, 3) * 2.0 - 1.0)
        return processed

    @torch.no_grad()
    def encode_video(self, video: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """
        VAE-encodes a preprocessed video `(batch, 3, frames, height, width)` in [-1, 1] into (normalised) latents,
        taking the posterior mode (deterministic; the official script draws a sample).
        """
        video = video.to(get_module_execution_device(self.vae), dtype=self.vae.dtype)
        latents = self.vae.encode(video).latent_dist.mode()
        return self._normalize(latents.float())

    @torch.no_grad()
    def caption(
        self,
        video,
        prompt: str | list[str] | None = None,
        max_text_length: int | None = None,
        num_inference_steps: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        height: int | None = None,
        width: int | None = None,
        num_frames: int | None = None,
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ("text_ids",),
        max_sequence_length: int = 512,
        video_cache: str | None = None,
        video_cache_refresh: int | None = None,
    ) -> UniViGUPipelineOutput | tuple:
        r"""
        Captions videos (video→text): the video is VAE-encoded and stays clean (time 0); the caption is denoised
        from source noise with the discrete flow (`UniFlowScheduler.step_text`, uniform text-time grid) and decoded
        up to the first end-of-sequence token, special tokens stripped.

        Args:
            video: one video or a list; see [`~UniViGUPipeline.preprocess_video`] for the accepted layouts and ranges.
            prompt (`str` or `list[str]`, *optional*): a condition for the cross-attention; `None` uses the official
                all-zero condition.
            max_text_length (`int`, *optional*): caption tokens (model config `max_text_length`).
            num_inference_steps (`int`, *optional*): text denoising steps (pipeline config default).
            generator (`torch.Generator` or list, *optional*): RNG for the text noise and the jumps. With a list, one
                generator per video, each video is captioned as if alone (batch-size independent results).
            height, width, num_frames (`int`, *optional*): the size videos are brought to before encoding.
            return_dict (`bool`, defaults to `True`): return a [`UniViGUPipelineOutput`] instead of a tuple.
            callback_on_step_end (`Callable`, *optional*): `callback(pipe, step, text_time, {"text_ids": ...})`.
            callback_on_step_end_tensor_inputs (`list[str]`): only `"text_ids"` and `"latents"` are available here.
            max_sequence_length (`int`, defaults to 512): T5 length of the optional prompt.
            video_cache (`str`, *optional*): the video context cache ([`UniViGUVideoContext`]). `"off"`: every step
                runs the whole `[video; text]` sequence. `"exact"`: the first step also returns every block's video
                keys/values and the other steps run only the text tokens against them; identical captions, for
                transformers with `video_attends_text=False` (the video never sees the text). `"approx"`: the same
                for joint-attention models, an approximation (the video states of the step that computed them),
                recomputed every `video_cache_refresh` steps. Default: `"exact"` when the transformer allows it,
                else `"off"`.
            video_cache_refresh (`int`, *optional*): with `video_cache="approx"`, recompute the video keys/values
                with a full step every this many steps (`None`: only at the first step).

        Returns:
            [`UniViGUPipelineOutput`] with `text` (a list of strings, `frames=None`), or `(text,)`.
        """
        if getattr(self.transformer, "is_cache_enabled", False):
            raise ValueError(
                f"caption does not run with diffusers' cache hooks (the transformer has "
                f"{type(self.transformer._cache_config).__name__} enabled): they skip blocks along the video's "
                "denoising trajectory, and a captioned video is clean and fixed, so its blocks are reused exactly by "
                "video_cache='exact' (or 'approx') instead. Call pipe.transformer.disable_cache() before captioning."
            )
        video_cache = self._resolve_video_cache(video_cache, video_cache_refresh)
        inputs = self.check_inputs(
            prompt=prompt,
            height=height,
            width=width,
            num_frames=num_frames,
            num_inference_steps=num_inference_steps,
            max_text_length=max_text_length,
            max_sequence_length=max_sequence_length,
            generator=generator,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
        )
        self._interrupt = False
        device = self._execution_device
        pixels = self._preprocess_clips(video, height, width, num_frames)
        batch = len(pixels)
        generators = per_sample_generators(generator, batch)

        prompt_embeds = None
        if prompt is not None:
            prompts = self._prompt_list(prompt)
            if len(prompts) == 1 and batch > 1:
                prompts = prompts * batch
            if len(prompts) != batch:
                raise ValueError(
                    f"prompt has {len(prompts)} entries but {batch} videos were given; accepted: one prompt per video "
                    "or a single prompt for all"
                )
            prompt_embeds, _ = self._encode_conditions(
                prompts=prompts,
                negative_prompt=None,
                num_videos_per_prompt=1,
                max_sequence_length=max_sequence_length,
                device=device,
                cfg=False,
            )

        # Videos with different frame counts are captioned in groups of one frame count (one loop each), so every
        # video keeps its own frames whatever else is in the batch.
        groups = {}
        for index, clip in enumerate(pixels):
            groups.setdefault(clip.shape[1], []).append(index)
        text_ids = [None] * batch
        for indices in groups.values():
            rows = self._caption_group(
                pixels=torch.stack([pixels[i] for i in indices]),
                prompt_embeds=None if prompt_embeds is None else prompt_embeds[indices],
                generators=None if generators is None else [generators[i] for i in indices],
                steps=inputs.num_inference_steps,
                length=inputs.max_text_length,
                video_cache=video_cache,
                video_cache_refresh=video_cache_refresh,
                callback_on_step_end=callback_on_step_end,
                callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            )
            for i, row in zip(indices, rows):
                text_ids[i] = row
        text = self._decode_text(torch.stack(text_ids))
        self.maybe_free_model_hooks()
        if not return_dict:
            return (text,)
        return UniViGUPipelineOutput(frames=None, text=text)

    def _caption_group(
        self,
        *,
        pixels,
        prompt_embeds,
        generators,
        steps,
        length,
        video_cache,
        video_cache_refresh,
        callback_on_step_end,
        callback_on_step_end_tensor_inputs,
    ) -> torch.Tensor:
        """The caption denoising loop for videos of one frame count `(batch, 3, frames, H, W)`; returns the token
        ids `(batch, length)` (as they were where `pipe._interrupt` stopped the loop, if it did)."""
        device = self._execution_device
        batch = pixels.shape[0]
        latents = self.encode_video(pixels).to(device)
        self._check_finite_output(
            "The VAE-encoded video latents",
            latents,
            hint="The VAE produced them from finite frames: its float16 encoder can overflow, use bfloat16 or "
            "float32 for the vae",
        )
        self.scheduler.set_timesteps(steps, device=device, text_time_schedule="uniform")
        text_ids = self._sample_text_source(batch=batch, length=length, generators=generators, device=device)
        video_timestep = torch.zeros(batch, device=device)
        latents = latents.to(self.transformer.dtype)
        text_times = self.scheduler.text_times
        self._num_timesteps = steps
        video_context = committed = None
        with self.progress_bar(total=steps) as progress_bar:
            for i in range(steps):
                if self.interrupt:
                    continue
                t_text = text_times[i]
                text_timestep = self.scheduler.text_time_to_timestep(t_text).expand(batch).to(device)
                full_step = video_context is None or (video_cache_refresh is not None and i % video_cache_refresh == 0)
                if full_step:
                    output = self.transformer(
                        video_latents=latents,
                        text_ids=text_ids,
                        video_timestep=video_timestep,
                        text_timestep=text_timestep,
                        encoder_hidden_states=prompt_embeds,
                        return_video_context=video_cache != "off",
                    )
                    logits = output.text_logits
                    if video_cache != "off":
                        video_context = output.video_context
                else:
                    logits = self.transformer(
                        text_ids=text_ids, text_timestep=text_timestep, video_context=video_context
                    ).text_logits
                self._check_finite_output("text_logits", logits, step=i)
                text_ids, committed = self._step_text(
                    logits, t_text, text_ids, generators, text_times[i + 1], committed
                )
                tensors = {
                    "latents": latents,
                    "prompt_embeds": prompt_embeds,
                    "negative_prompt_embeds": None,
                    "text_ids": text_ids,
                }
                tensors = self._run_callback(
                    callback_on_step_end, i, t_text, callback_on_step_end_tensor_inputs, tensors
                )
                text_ids = tensors["text_ids"]  # the caption loop takes only the caption back
                progress_bar.update()
                if committed is not None and bool(committed.all()):
                    break  # confidence decoding: every position is committed, the caption is final

        return text_ids

    def _resolve_video_cache(self, video_cache, video_cache_refresh) -> str:
        """Checks `caption`'s cache arguments; returns the mode (`None` -> "exact" when allowed, else "off")."""
        joint_attention = self.transformer.config.video_attends_text
        if video_cache is None:
            video_cache = "off" if joint_attention else "exact"
        if video_cache not in VIDEO_CACHE_MODES:
            raise ValueError(
                f"video_cache must be one of {VIDEO_CACHE_MODES} or None (exact when the model allows it, else off), "
                f"got {video_cache!r}"
            )
        if video_cache == "exact" and joint_attention:
            raise ValueError(
                "video_cache='exact' needs a transformer with video_attends_text=False (its video never attends to the "
                "caption); this one has video_attends_text=True, so use video_cache='off' (exact, the default here) "
                "or video_cache='approx' (cached video keys/values, an approximation)"
            )
        if video_cache_refresh is not None:
            if video_cache != "approx":
                raise ValueError(
                    f"video_cache_refresh is only used with video_cache='approx', got video_cache={video_cache!r}"
                )
            if not is_int(video_cache_refresh) or video_cache_refresh < 1:
                raise ValueError(
                    "video_cache_refresh must be a positive integer (a full step every that many steps) or None "
                    f"(only the first step), got {video_cache_refresh!r}"
                )
        return video_cache

    def _sample_text_source(self, batch, length, generators, device) -> torch.Tensor:
        if generators is None:
            return self.scheduler.sample_text_source((batch, length), device=device)
        return torch.cat(
            [self.scheduler.sample_text_source((1, length), generator=g, device=device) for g in generators]
        )

    def _step_text(self, logits, t_text, text_ids, generators, t_next, committed=None):
        """One text step (a row at a time with per-video generators); returns `(text_ids, committed)`, the mask of
        committed positions (`None` unless the scheduler has `text_decoding="confidence"`)."""
        if generators is None:
            out = self.scheduler.step_text(logits, t_text, text_ids, next_text_time=t_next, text_committed=committed)
            return out.prev_text_ids, out.text_committed
        rows = [
            self.scheduler.step_text(
                logits[i : i + 1],
                t_text,
                text_ids[i : i + 1],
                generator=g,
                next_text_time=t_next,
                text_committed=None if committed is None else committed[i : i + 1],
            )
            for i, g in enumerate(generators)
        ]
        if rows[0].text_committed is None:
            return torch.cat([row.prev_text_ids for row in rows]), None
        return torch.cat([row.prev_text_ids for row in rows]), torch.cat([row.text_committed for row in rows])
