"""`UniViGUPipeline`: text-to-video, video captioning and joint video+text generation with one diffusers pipeline."""

import json
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLWan, DiffusionPipeline, WanPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils import BaseOutput, logging
from diffusers.utils.loading_utils import load_video
from diffusers.utils.torch_utils import get_module_execution_device
from diffusers.video_processor import VideoProcessor
from safetensors import SafetensorError

from .modeling_univigu import UniViGUModel, diffusers_dtype_kwargs, realign_cpu_tensors, unreadable_weights_error
from .numerics import all_finite
from .saving import atomic_save_pretrained
from .scheduling_uniflow import UniFlowScheduler


logger = logging.get_logger(__name__)

TASKS = ("t2v", "v2t", "joint")
OUTPUT_TYPES = ("np", "pil", "pt", "latent")
VIDEO_CACHE_MODES = ("off", "exact", "approx")
TRANSFORMERS_CONFIG_NAME = "config.json"
TRANSFORMERS_INDEX_NAME = "model.safetensors.index.json"
# `save_pretrained(..., push_to_hub=True, **kwargs)`: the keyword arguments that go to `univigu_hf.hub.push_to_hub`.
_PUSH_KWARGS = (
    "repo_id", "commit_message", "private", "token", "create_pr", "revision", "card_data", "metrics", "training",
    "base_model", "example_prompt",
)  # fmt: skip

_NON_FINITE_HINT = (
    "The model produced them: float16 activations can overflow (use bfloat16 or float32: torch_dtype=...), the "
    "weights may come from a diverged training run (check them for NaN), or the inputs were out of range"
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


class UniViGUPipeline(DiffusionPipeline):
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
    # Building and saving
    # ----------------------------------------------------------------------------------------------------------------
    @classmethod
    def from_wan(
        cls,
        wan_pipeline_or_path: "WanPipeline | str | os.PathLike",
        *,
        text_ffn_dim: int | None = None,
        text_vocab_size: int | None = None,
        max_text_length: int = 256,
        shift: float | None = None,
        torch_dtype: torch.dtype | None = None,
        video_attends_text: bool = True,
        **pipeline_kwargs,
    ) -> "UniViGUPipeline":
        r"""
        Builds a unified pipeline from a diffusers Wan2.1 text-to-video pipeline: the same VAE, text encoder and
        tokenizer, the Wan transformer grown into a [`UniViGUModel`] with a fresh text branch (see
        [`UniViGUModel.from_wan`]), and a [`UniFlowScheduler`].

        Args:
            wan_pipeline_or_path (`WanPipeline`, `str` or `os.PathLike`):
                A loaded `WanPipeline` (components are shared, the transformer is copied) or its folder / repo id.
            text_ffn_dim (`int`, *optional*): width of the text FFN experts (`None`: full-size copy).
            text_vocab_size (`int`, *optional*): caption vocabulary; `None` uses `len(tokenizer)`.
            max_text_length (`int`, defaults to 256): default caption length (the official run uses 256).
            shift (`float`, *optional*): flow shift; `None` takes the Wan scheduler's `flow_shift`/`shift` (3.0 if
                it has none).
            torch_dtype (`torch.dtype`, *optional*): dtype to load a Wan pipeline from a path in.
            video_attends_text (`bool`, defaults to `True`): the transformer's `video_attends_text` (`False`: the
                video never attends to the caption, which makes the exact video context cache of `caption` possible).
            **pipeline_kwargs: pipeline config (`default_height`, `default_num_inference_steps`, ...).

        Returns:
            [`UniViGUPipeline`]
        """
        if isinstance(wan_pipeline_or_path, (str, os.PathLike)):
            wan = WanPipeline.from_pretrained(wan_pipeline_or_path, **diffusers_dtype_kwargs(torch_dtype))
        elif isinstance(wan_pipeline_or_path, WanPipeline):
            wan = wan_pipeline_or_path
        else:
            raise TypeError(
                "wan_pipeline_or_path must be a diffusers WanPipeline or the path/repo id of one, got "
                f"{type(wan_pipeline_or_path).__name__}"
            )
        if wan.transformer is None:
            raise ValueError("wan_pipeline_or_path has no transformer (a Wan2.2 low-noise-only pipeline?)")
        vocab = len(wan.tokenizer) if text_vocab_size is None else text_vocab_size
        transformer = UniViGUModel.from_wan(
            wan.transformer,
            text_vocab_size=vocab,
            text_ffn_dim=text_ffn_dim,
            max_text_length=max_text_length,
            pad_token_id=wan.tokenizer.pad_token_id if wan.tokenizer.pad_token_id is not None else 0,
            video_attends_text=video_attends_text,
        )
        if shift is None:
            wan_scheduler = dict(wan.scheduler.config)
            shift = wan_scheduler.get("flow_shift") or wan_scheduler.get("shift") or 3.0
        scheduler = UniFlowScheduler(shift=float(shift), text_vocab_size=vocab)
        return cls(
            vae=wan.vae,
            text_encoder=wan.text_encoder,
            tokenizer=wan.tokenizer,
            transformer=transformer,
            scheduler=scheduler,
            **pipeline_kwargs,
        )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> "UniViGUPipeline":
        """
        `DiffusionPipeline.from_pretrained` (local folder or repo id; all its arguments), with CPU weights realigned
        after memory-mapped loading so that a saved pipeline reproduces its outputs bit for bit, and checks that no
        partly random pipeline is returned: a truncated/corrupted weights file, a pickle that is not weights-only, a
        component whose weights miss tensors its config needs, or a tokenizer/scheduler that does not fit the
        transformer's `text_vocab_size` raise a clear error.
        """
        source = os.fspath(pretrained_model_name_or_path)
        try:
            pipeline = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        except (SafetensorError, pickle.UnpicklingError) as error:
            raise unreadable_weights_error(source, error) from error
        except OSError as error:  # diffusers' wording for the same unreadable files
            if "Unable to load weights from checkpoint file" in str(error):
                raise unreadable_weights_error(source, error) from error
            raise
        for name, component in pipeline.components.items():
            if isinstance(component, torch.nn.Module):
                if not isinstance(component, UniViGUModel):  # UniViGUModel.from_pretrained checks its own weights
                    _check_component_weights(name, component)
                realign_cpu_tensors(component)
        return pipeline

    def save_pretrained(self, save_directory: str | os.PathLike, *args, push_to_hub: bool = False, **kwargs):
        """
        `DiffusionPipeline.save_pretrained` (all its arguments), made atomic: the pipeline is written into a staging
        folder and then moved into place (see [`univigu_hf.saving`]), so an interrupted save leaves the previous
        complete pipeline or none; other files of the folder are kept. With `push_to_hub=True` the saved folder is then
        published with its UniViGU model card by [`univigu_hf.hub.push_to_hub`]: `repo_id` (default: the folder
        name), `commit_message`, `private`, `token`, `create_pr`, `revision`, `card_data`, `metrics`, `training`,
        `base_model` and `example_prompt` are taken from the keyword arguments. The card is uploaded, not written into
        `save_directory`.
        """
        hub_kwargs = {name: kwargs.pop(name) for name in _PUSH_KWARGS if name in kwargs}
        if push_to_hub:
            from .hub import check_can_push

            repo_id = hub_kwargs.pop("repo_id", None) or os.path.basename(os.path.normpath(save_directory))
            check_can_push(repo_id)  # before saving anything
        atomic_save_pretrained(super().save_pretrained, save_directory, *args, **kwargs)
        if push_to_hub:
            from .hub import push_to_hub as push

            hub_kwargs["private"] = bool(hub_kwargs.get("private"))
            return push(save_directory, repo_id, **hub_kwargs)
        return None

    def push_to_hub(
        self,
        repo_id: str,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        create_pr: bool = False,
        safe_serialization: bool = True,
        *,
        card_data: dict | None = None,
        **kwargs,
    ):
        r"""
        Publishes the pipeline to the Hub in one commit, with a UniViGU model card as its `README.md` (architecture,
        defaults, usage for diffusers and transformers, training details and evaluation results when given,
        limitations, citation). Same arguments as diffusers' `push_to_hub`, plus those of
        [`univigu_hf.hub.push_to_hub`] (`card_data`, `metrics`, `training`, `base_model`, `revision`, ...).

        Returns:
            `huggingface_hub.CommitInfo` (a `str`: the commit URL; `.repo_url.repo_id` is the full repository id).
        """
        if safe_serialization is not True:
            raise ValueError("safe_serialization must be True: univigu_hf publishes safetensors only")
        from .hub import push_to_hub as push

        return push(
            self,
            repo_id,
            private=bool(private),
            commit_message=commit_message,
            token=token,
            create_pr=create_pr,
            card_data=card_data,
            **kwargs,
        )

    def save_config(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs):
        """
        Writes `model_index.json` and, so that transformers can load the same folder, a root `config.json` (the
        transformer's) and a root `model.safetensors.index.json` pointing into `transformer/` (no duplicated
        weights). `save_pretrained` calls this after saving the components.
        """
        super().save_config(save_directory, push_to_hub=push_to_hub, **kwargs)
        transformer_dir = os.path.join(save_directory, "transformer")
        if not os.path.isfile(os.path.join(transformer_dir, TRANSFORMERS_CONFIG_NAME)):
            return  # Called before the components were written (diffusers does this when pushing).
        with open(os.path.join(transformer_dir, TRANSFORMERS_CONFIG_NAME), encoding="utf-8") as handle:
            config = json.load(handle)
        with open(os.path.join(save_directory, TRANSFORMERS_CONFIG_NAME), "w", encoding="utf-8") as handle:
            json.dump(config, handle, indent=2, sort_keys=True)
        index_path = os.path.join(transformer_dir, TRANSFORMERS_INDEX_NAME)
        if os.path.isfile(index_path):  # Sharded: re-point the existing index.
            with open(index_path, encoding="utf-8") as handle:
                index = json.load(handle)
            index["weight_map"] = {k: f"transformer/{v}" for k, v in index["weight_map"].items()}
        else:
            from safetensors import safe_open

            weights = os.path.join(transformer_dir, "model.safetensors")
            with safe_open(weights, framework="pt") as handle:
                keys = list(handle.keys())
            index = {
                "metadata": {"total_size": os.path.getsize(weights)},
                "weight_map": dict.fromkeys(keys, "transformer/model.safetensors"),
            }
        with open(os.path.join(save_directory, TRANSFORMERS_INDEX_NAME), "w", encoding="utf-8") as handle:
            json.dump(index, handle, indent=2, sort_keys=True)

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
    def _resolve_size(self, height, width, num_frames) -> tuple[int, int, int]:
        height = self.config.default_height if height is None else height
        width = self.config.default_width if width is None else width
        num_frames = self.config.default_num_frames if num_frames is None else num_frames
        patch = self.transformer.config.patch_size
        for name, value, multiple in (
            ("height", height, self.vae_scale_factor_spatial * patch[1]),
            ("width", width, self.vae_scale_factor_spatial * patch[2]),
        ):
            if not _is_int(value) or value < multiple or value % multiple:
                raise ValueError(
                    f"{name} must be a positive multiple of {multiple} (VAE factor {self.vae_scale_factor_spatial} x "
                    f"patch size {multiple // self.vae_scale_factor_spatial}), got {value!r}"
                )
        temporal = self.vae_scale_factor_temporal * patch[0]
        if not _is_int(num_frames) or num_frames < 1 or (num_frames - 1) % temporal:
            raise ValueError(
                f"num_frames must be {temporal}k+1 (1, {temporal + 1}, {2 * temporal + 1}, ...), got {num_frames!r}"
            )
        return height, width, num_frames

    def _resolve_common(self, num_inference_steps, output_type, guidance_scale=None):
        steps = self.config.default_num_inference_steps if num_inference_steps is None else num_inference_steps
        if not _is_int(steps) or steps < 1:
            raise ValueError(f"num_inference_steps must be a positive integer, got {steps!r}")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        if guidance_scale is None:
            guidance_scale = self.config.default_guidance_scale
        if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, (int, float, np.integer, np.floating)):
            raise TypeError(f"guidance_scale must be a number (<= 1 disables CFG), got {guidance_scale!r}")
        if not np.isfinite(guidance_scale):
            raise ValueError(f"guidance_scale must be a finite number (<= 1 disables CFG), got {guidance_scale!r}")
        return steps, float(guidance_scale)

    def _resolve_text_length(self, max_text_length) -> int:
        length = self.transformer.config.max_text_length if max_text_length is None else max_text_length
        limit = max(self.transformer.config.max_text_length, getattr(self.tokenizer, "model_max_length", 0) or 0)
        limit = min(limit, 10**6)
        if not _is_int(length) or length < 1 or length > limit:
            raise ValueError(f"max_text_length must be an integer in [1, {limit}] (the model's limit), got {length!r}")
        return length

    @staticmethod
    def _prompt_list(prompt, name: str = "prompt") -> list[str]:
        if isinstance(prompt, str):
            return [prompt]
        if isinstance(prompt, (list, tuple)) and prompt and all(isinstance(p, str) for p in prompt):
            return list(prompt)
        if isinstance(prompt, (list, tuple)) and not prompt:
            raise ValueError(f"{name} must be a non-empty string or list of strings, got an empty list")
        raise TypeError(f"{name} must be a string or a list of strings, got {type(prompt).__name__} {prompt!r}"[:200])

    def _check_callback(self, callback_on_step_end_tensor_inputs, callback_on_step_end=None):
        if callback_on_step_end is not None and not callable(callback_on_step_end):
            raise TypeError(
                "callback_on_step_end must be None, a callable `callback(pipe, step, timestep, tensors) -> dict`, a "
                f"PipelineCallback or MultiPipelineCallbacks, got {type(callback_on_step_end).__name__}"
            )
        unknown = [k for k in callback_on_step_end_tensor_inputs if k not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(
                f"callback_on_step_end_tensor_inputs must be in {self._callback_tensor_inputs}, got unknown {unknown}"
            )

    def _check_generation(
        self,
        prompt,
        height,
        width,
        num_frames,
        num_inference_steps,
        guidance_scale,
        output_type,
        num_videos_per_prompt,
        callback_on_step_end,
        callback_on_step_end_tensor_inputs,
    ):
        """Validates the arguments shared by the video-generating tasks and resets the loop state."""
        prompts = self._prompt_list(prompt)
        size = self._resolve_size(height, width, num_frames)
        steps, guidance_scale = self._resolve_common(num_inference_steps, output_type, guidance_scale)
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        self._check_callback(callback_on_step_end_tensor_inputs, callback_on_step_end)
        _check_positive_int("num_videos_per_prompt", num_videos_per_prompt)
        self._guidance_scale, self._interrupt, self._current_timestep = guidance_scale, False, None
        return prompts, size, steps, callback_on_step_end_tensor_inputs

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
        _check_positive_int("max_sequence_length", max_sequence_length)
        negative = None
        if cfg and negative_prompt is not None:
            negative = self._prompt_list(negative_prompt, "negative_prompt")
            if len(negative) == 1 and len(prompts) > 1:
                negative = negative * len(prompts)
            if len(negative) != len(prompts):
                raise ValueError(
                    f"negative_prompt has {len(negative)} entries but prompt has {len(prompts)}; they must match "
                    "(or give a single negative prompt)"
                )
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
        self._check_finite("prompt_embeds", prompt_embeds, hint=hint)
        self._check_finite("negative_prompt_embeds", negative_embeds, hint=hint)
        return prompt_embeds.to(dtype), None if negative_embeds is None else negative_embeds.to(dtype)

    def _check_finite(self, name: str, tensor, step: int | None = None, hint: str = "") -> None:
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
        self._check_finite(
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

    def _run_callback(self, callback, step, timestep, names, local_values):
        outputs = callback(self, step, timestep, {k: local_values[k] for k in names})
        return outputs or {}

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
        prompts, (height, width, num_frames), steps, callback_on_step_end_tensor_inputs = self._check_generation(
            prompt,
            height,
            width,
            num_frames,
            num_inference_steps,
            guidance_scale,
            output_type,
            num_videos_per_prompt,
            callback_on_step_end,
            callback_on_step_end_tensor_inputs,
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
        text_ids = text_mask = text_timestep = None
        if use_text_stream:
            text_ids, text_mask = self._tokenize_text_stream(
                prompts, num_videos_per_prompt, self._resolve_text_length(max_text_length), device
            )
            text_timestep = torch.zeros(batch, device=device)

        self.scheduler.set_timesteps(steps, device=device)
        timesteps = self.scheduler.timesteps
        latents = self._prepare_video_latents(batch, height, width, num_frames, device, generator, latents)
        transformer_dtype = self.transformer.dtype
        self._num_timesteps = len(timesteps)
        self.scheduler.set_begin_index(0)

        with self.progress_bar(total=steps) as progress_bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    continue
                self._current_timestep = t
                model_input = latents.to(transformer_dtype)
                timestep = t.expand(batch)
                noise_pred, _ = self._guided_forward(
                    model_input, timestep, text_ids, text_timestep, text_mask, prompt_embeds, negative_prompt_embeds
                )
                latents = self.scheduler.step(noise_pred, t, latents, return_dict=False)[0]
                self._check_finite("latents", latents, step=i)

                if callback_on_step_end is not None:
                    outputs = self._run_callback(
                        callback_on_step_end, i, t, callback_on_step_end_tensor_inputs, locals()
                    )
                    latents = outputs.pop("latents", latents)
                    prompt_embeds = outputs.pop("prompt_embeds", prompt_embeds)
                    negative_prompt_embeds = outputs.pop("negative_prompt_embeds", negative_prompt_embeds)
                    text_ids = outputs.pop("text_ids", text_ids)
                progress_bar.update()

        self._current_timestep = None
        frames = self._decode(latents, output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (frames,)
        return UniViGUPipelineOutput(frames=frames, text=None)

    def _prepare_video_latents(self, batch, height, width, num_frames, device, generator, latents):
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
        return self.prepare_latents(
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

    # ----------------------------------------------------------------------------------------------------------------
    # Video -> text
    # ----------------------------------------------------------------------------------------------------------------
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

        Frames are resized (aspect ratio kept) to cover `height x width` and center-cropped (defaults: the pipeline
        config). When a video has more frames than `num_frames` (default: the most frames of the form 4k+1 available,
        at most the config's `default_num_frames`), `num_frames` frames are taken evenly spaced over the clip.

        Returns:
            `torch.Tensor`: `(batch, 3, num_frames, height, width)` float32 in [-1, 1].
        """
        height, width, _ = self._resolve_size(height, width, 1)
        clips = _to_frame_tensors(video)
        if num_frames is None:
            shortest = min(clip.shape[0] for clip in clips)
            temporal = self.vae_scale_factor_temporal * self.transformer.config.patch_size[0]
            num_frames = min((shortest - 1) // temporal * temporal + 1, self.config.default_num_frames)
        else:
            _, _, num_frames = self._resolve_size(height, width, num_frames)
        processed = []
        for clip in clips:
            if clip.shape[0] < num_frames:
                raise ValueError(
                    f"video has {clip.shape[0]} frames but num_frames={num_frames} were requested; accepted: "
                    f"num_frames <= {clip.shape[0]} of the form 4k+1, or None (the most the shortest video allows)"
                )
            index = torch.linspace(0, clip.shape[0] - 1, num_frames).round().long()
            processed.append(_resize_and_center_crop(clip[index], height, width))
        return torch.stack(processed).permute(0, 2, 1, 3, 4) * 2.0 - 1.0

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
        video_cache = self._resolve_video_cache(video_cache, video_cache_refresh)
        steps, _ = self._resolve_common(num_inference_steps, "np", 1.0)
        length = self._resolve_text_length(max_text_length)
        self._check_callback(callback_on_step_end_tensor_inputs, callback_on_step_end)
        device = self._execution_device
        pixels = self.preprocess_video(video, height, width, num_frames)
        batch = pixels.shape[0]
        latents = self.encode_video(pixels).to(device)
        self._num_timesteps = steps
        self._check_finite(
            "The VAE-encoded video latents",
            latents,
            hint="The VAE produced them from finite frames: its float16 encoder can overflow, use bfloat16 or "
            "float32 for the vae",
        )
        generators = _generator_list(generator, batch)

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
            prompt_embeds, _ = self._encode_conditions(prompts, None, 1, max_sequence_length, device, cfg=False)

        self.scheduler.set_timesteps(steps, device=device, text_time_schedule="uniform")
        text_ids = self._sample_text_source(batch, length, generators, device)
        video_timestep = torch.zeros(batch, device=device)
        latents = latents.to(self.transformer.dtype)
        text_times = self.scheduler.text_times
        self._num_timesteps, self._interrupt = steps, False
        video_context = None
        with self.progress_bar(total=steps) as progress_bar:
            for i in range(steps):
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
                self._check_finite("text_logits", logits, step=i)
                text_ids = self._step_text(logits, t_text, text_ids, generators, text_times[i + 1])
                if callback_on_step_end is not None:
                    outputs = self._run_callback(
                        callback_on_step_end, i, t_text, callback_on_step_end_tensor_inputs, locals()
                    )
                    text_ids = outputs.pop("text_ids", text_ids)
                progress_bar.update()

        text = self._decode_text(text_ids)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (text,)
        return UniViGUPipelineOutput(frames=None, text=text)

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
            if not _is_int(video_cache_refresh) or video_cache_refresh < 1:
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

    def _step_text(self, logits, t_text, text_ids, generators, t_next) -> torch.Tensor:
        if generators is None:
            return self.scheduler.step_text(logits, t_text, text_ids, next_text_time=t_next, return_dict=False)[0]
        rows = [
            self.scheduler.step_text(
                logits[i : i + 1], t_text, text_ids[i : i + 1], generator=g, next_text_time=t_next, return_dict=False
            )[0]
            for i, g in enumerate(generators)
        ]
        return torch.cat(rows)

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
        prompts, (height, width, num_frames), steps, callback_on_step_end_tensor_inputs = self._check_generation(
            prompt,
            height,
            width,
            num_frames,
            num_inference_steps,
            guidance_scale,
            output_type,
            num_videos_per_prompt,
            callback_on_step_end,
            callback_on_step_end_tensor_inputs,
        )
        length = self._resolve_text_length(max_text_length)
        device, batch = self._execution_device, len(prompts) * num_videos_per_prompt
        prompt_embeds, negative_prompt_embeds = self._encode_conditions(
            prompts,
            negative_prompt,
            num_videos_per_prompt,
            max_sequence_length,
            device,
            self.do_classifier_free_guidance,
        )
        self.scheduler.set_timesteps(steps, device=device, text_time_schedule="video")
        timesteps, text_times = self.scheduler.timesteps, self.scheduler.text_times
        latents = self._prepare_video_latents(batch, height, width, num_frames, device, generator, latents)
        generators = _generator_list(generator, batch)
        text_ids = self._sample_text_source(batch, length, generators, device)
        transformer_dtype = self.transformer.dtype
        self._num_timesteps = len(timesteps)
        self.scheduler.set_begin_index(0)

        with self.progress_bar(total=steps) as progress_bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    continue
                self._current_timestep = t
                model_input = latents.to(transformer_dtype)
                video_timestep = t.expand(batch)
                text_timestep = self.scheduler.text_time_to_timestep(text_times[i]).expand(batch).to(device)
                noise_pred, logits = self._guided_forward(
                    model_input, video_timestep, text_ids, text_timestep, None, prompt_embeds, negative_prompt_embeds
                )
                latents = self.scheduler.step(noise_pred, t, latents, return_dict=False)[0]
                self._check_finite("latents", latents, step=i)
                self._check_finite("text_logits", logits, step=i)
                text_ids = self._step_text(logits, text_times[i], text_ids, generators, text_times[i + 1])
                if callback_on_step_end is not None:
                    outputs = self._run_callback(
                        callback_on_step_end, i, t, callback_on_step_end_tensor_inputs, locals()
                    )
                    latents = outputs.pop("latents", latents)
                    text_ids = outputs.pop("text_ids", text_ids)
                progress_bar.update()

        self._current_timestep = None
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
def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_positive_int(name: str, value) -> None:
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _generator_list(generator, batch: int) -> list[torch.Generator] | None:
    if generator is None:
        return None
    if isinstance(generator, torch.Generator):
        if batch == 1:
            return [generator]
        # One generator for the batch: split deterministically into per-sample streams.
        seeds = torch.randint(0, 2**62, (batch,), generator=generator, device=generator.device).tolist()
        return [torch.Generator(generator.device).manual_seed(seed) for seed in seeds]
    if isinstance(generator, (list, tuple)) and all(isinstance(g, torch.Generator) for g in generator):
        if len(generator) != batch:
            raise ValueError(
                f"generator list has {len(generator)} generators but the batch has {batch} samples; accepted: one "
                f"torch.Generator, or a list of {batch} (one per sample)"
            )
        return list(generator)
    raise TypeError(
        f"generator must be a torch.Generator or a list of them (one per sample), got {type(generator).__name__}"
    )


def _check_component_weights(name: str, component: torch.nn.Module) -> None:
    """
    Raises if a loaded component lacks tensors its config needs (transformers fills those with random values and
    only warns). Compares the component's parameters with the tensor names in its local safetensors files; tied
    parameters count once.
    """
    folder = getattr(component, "name_or_path", None) or getattr(
        getattr(component, "config", None), "_name_or_path", None
    )
    if not isinstance(folder, str) or not os.path.isdir(folder):
        return
    files = [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".safetensors")]
    if not files:
        return
    from safetensors import safe_open

    stored = set()
    for path in files:
        with safe_open(path, framework="pt") as handle:
            stored.update(handle.keys())
    groups: dict[tuple, list[str]] = {}
    for key, tensor in component.state_dict(keep_vars=True).items():
        ident = (tensor.device, tensor.data_ptr()) if tensor.numel() and tensor.device.type != "meta" else (key,)
        groups.setdefault(ident, []).append(key)
    missing = sorted(keys[0] for keys in groups.values() if not any(key in stored for key in keys))
    if missing:
        raise ValueError(
            f"The {name} weights in {folder!r} do not match its config: {len(missing)} tensors the config needs are "
            f"missing from the checkpoint ({missing[:4]}{' ...' if len(missing) > 4 else ''}). The config and the "
            "weights come from different models, or the download is incomplete: re-save or re-download the folder."
        )


def _to_frame_tensors(video) -> list[torch.Tensor]:
    """Normalises the accepted video inputs into a list of `(frames, 3, H, W)` float tensors in [0, 1]."""
    if isinstance(video, (str, os.PathLike)):
        return [_load_video_file(os.fspath(video))]
    if isinstance(video, PIL.Image.Image):
        return [_pil_frames([video])]
    if isinstance(video, (list, tuple)):
        if not video:
            raise ValueError(
                "video must not be an empty list; accepted: a path, a list of PIL frames, an array or tensor, or a "
                "non-empty list of these"
            )
        if all(isinstance(frame, PIL.Image.Image) for frame in video):
            return [_pil_frames(video)]
        clips = []
        for item in video:
            if isinstance(item, (list, tuple)) and item and all(isinstance(f, PIL.Image.Image) for f in item):
                clips.append(_pil_frames(item))
            else:
                clips.extend(_to_frame_tensors(item) if not isinstance(item, (list, tuple)) else [None])
        if any(clip is None for clip in clips):
            raise TypeError(
                "video must be a path, a list of PIL images, a numpy array, a torch tensor, or a list of these"
            )
        return clips
    if isinstance(video, np.ndarray):
        if video.ndim not in (4, 5) or video.shape[-1] != 3:
            raise ValueError(
                "video as a numpy array must have shape (frames, height, width, 3) or (batch, frames, height, width, "
                f"3), got {video.shape}"
            )
        if video.dtype == np.uint8:
            array = video.astype(np.float32) / 255.0
        elif np.issubdtype(video.dtype, np.floating):
            array = video.astype(np.float32)
            if not np.isfinite(array).all():
                raise ValueError(_NON_FINITE_VIDEO.format(int((~np.isfinite(array)).sum())))
            _check_unit_range(array.min(), array.max())
        else:
            raise TypeError(f"video as a numpy array must be uint8 in [0, 255] or float in [0, 1], got {video.dtype}")
        tensor = torch.from_numpy(array).movedim(-1, -3)  # (..., F, 3, H, W)
        return list(tensor) if tensor.ndim == 5 else [tensor]
    if isinstance(video, torch.Tensor):
        if video.ndim not in (4, 5) or video.shape[-3] != 3:
            raise ValueError(
                "video as a torch tensor must have shape (frames, 3, height, width) or (batch, frames, 3, height, "
                f"width), got {tuple(video.shape)}"
            )
        if not video.is_floating_point():
            raise TypeError(f"video as a torch tensor must be floating point in [0, 1], got {video.dtype}")
        tensor = video.detach().float().cpu()
        if not all_finite(tensor):
            raise ValueError(_NON_FINITE_VIDEO.format(int((~torch.isfinite(tensor)).sum())))
        _check_unit_range(float(tensor.min()), float(tensor.max()))
        return list(tensor) if tensor.ndim == 5 else [tensor]
    raise TypeError(
        "video must be a path, a list of PIL images, a numpy array, a torch tensor, or a list of these; got "
        f"{type(video).__name__}"
    )


_NON_FINITE_VIDEO = "video contains {} NaN or inf values; accepted: finite floats in [0, 1] (or uint8 in [0, 255])"


def _check_unit_range(low: float, high: float, tolerance: float = 1e-3) -> None:
    if low < -tolerance or high > 1 + tolerance:
        raise ValueError(
            f"video values must be in [0, 1] (floats) or [0, 255] (uint8), got values in [{low:.3f}, {high:.3f}]"
            + ("; a [-1, 1] tensor can be passed as (video + 1) / 2" if low < 0 else "")
        )


def _pil_frames(frames) -> torch.Tensor:
    arrays = [np.asarray(frame.convert("RGB"), dtype=np.float32) / 255.0 for frame in frames]
    if len({a.shape for a in arrays}) > 1:
        raise ValueError("video frames must all have the same size")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)


_VIDEO_READ_ATTEMPTS = 3


def _load_video_file(path: str) -> torch.Tensor:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"video file not found: {path!r}")
    for attempt in range(_VIDEO_READ_ATTEMPTS):
        try:
            frames = load_video(path)
            break
        except OSError as error:
            # imageio-ffmpeg gives up on ffmpeg's header after 10 s ("Could not load meta information"), which a
            # busy machine can exceed for a valid file: read again before calling the file unreadable.
            if attempt + 1 < _VIDEO_READ_ATTEMPTS:
                logger.warning(f"Reading {path!r} failed ({error.__class__.__name__}); trying again.")
                continue
            raise ValueError(
                f"video file {path!r} could not be read as a video after {_VIDEO_READ_ATTEMPTS} attempts "
                f"({type(error).__name__}: {error})"
            ) from error
        except Exception as error:  # imageio raises many types for unreadable files
            raise ValueError(
                f"video file {path!r} could not be read as a video ({type(error).__name__}: {error})"
            ) from error
    if not frames:
        raise ValueError(f"video file {path!r} has no frames")
    return _pil_frames(frames)


def _resize_and_center_crop(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    _, _, h, w = frames.shape
    if (h, w) != (height, width):
        scale = max(height / h, width / w)
        size = (max(height, round(h * scale)), max(width, round(w * scale)))
        frames = F.interpolate(frames, size=size, mode="bilinear", antialias=True, align_corners=False)
        top = (size[0] - height) // 2
        left = (size[1] - width) // 2
        frames = frames[:, :, top : top + height, left : left + width]
    return frames.clamp(0.0, 1.0)


__all__ = ["UniViGUPipeline", "UniViGUPipelineOutput"]
