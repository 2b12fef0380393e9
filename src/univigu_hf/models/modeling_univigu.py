"""UniViGU: a Wan2.1 video diffusion transformer that also denoises caption tokens (transformers `PreTrainedModel`)."""

import functools
import math
import os
import pickle
import re
from dataclasses import dataclass

import torch
import torch.nn as nn
from diffusers import WanTransformer3DModel
from diffusers.models.normalization import FP32LayerNorm
from diffusers.models.transformers.transformer_wan import (
    WanRotaryPosEmbed,
    WanTimeTextImageEmbedding,
    WanTransformerBlock,
)
from safetensors import SafetensorError
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput, logging

from ..utils.checks import describe_value
from ..utils.loading import check_state_dict_keys, config_summary, loading_problems, unreadable_weights_error
from ..utils.saving import atomic_save_pretrained
from ..utils.torch_utils import diffusers_dtype_kwargs, realign_cpu_tensors
from .attention_processor import text_rotary_embedding
from .configuration_univigu import UniViGUConfig
from .diffusers_toolbox import DiffusersToolboxMixin
from .input_checks import check_forward_inputs
from .transformer_block import UniViGUTextTimeEmbedding, UniViGUTransformerBlock
from .video_context import UniViGUVideoContext
from .wan_growth import detect_wan_subfolder, initial_text_parameters, is_text_parameter


logger = logging.get_logger(__name__)


@dataclass
class UniViGUModelOutput(ModelOutput):
    """
    Output of [`UniViGUModel`].

    Args:
        video_velocity (`torch.Tensor` of shape `(batch_size, out_channels, frames, height, width)`, *optional*):
            Predicted flow-matching velocity (`noise - x0`) of the video latents; `None` when no video was given.
        text_logits (`torch.Tensor` of shape `(batch_size, text_length, text_vocab_size)`, *optional*):
            Logits of the clean caption token at each text position; `None` when no text was given.
        video_context ([`UniViGUVideoContext`], *optional*):
            The video keys/values of every block, with `return_video_context=True`.
        hidden_states (`tuple(torch.Tensor)`, *optional*):
            With `output_hidden_states=True`: the token stream after the embeddings and after each block
            (`num_layers + 1` tensors of shape `(batch_size, video_tokens + text_tokens, hidden_size)`, the video tokens
            first, as the joint self-attention sees them; only the streams the call computes).
    """

    video_velocity: torch.Tensor | None = None
    text_logits: torch.Tensor | None = None
    video_context: UniViGUVideoContext | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


class UniViGUPreTrainedModel(PreTrainedModel):
    config_class = UniViGUConfig
    config: UniViGUConfig
    base_model_prefix = ""
    main_input_name = "video_latents"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["UniViGUTransformerBlock"]
    # Wan's fp32 modules (diffusers' `_keep_in_fp32_modules`) that hold weights, plus the text head's norm; `_strict`
    # keeps them fp32 in bf16 as well as fp16. (Wan's parameterless `norm1`/`norm3` compute in fp32 by class.)
    _keep_in_fp32_modules = []
    _keep_in_fp32_modules_strict = [
        "time_embedder",
        "scale_shift_table",
        "norm2",
        "text_scale_shift_table",
        "text_norm_out",
    ]

    @classmethod
    def keeps_fp32(cls, name: str) -> bool:
        """Whether the parameter `name` stays float32 in a half-precision model (transformers' own name matching)."""
        return _module_pattern(tuple(cls._keep_in_fp32_modules_strict)).search(name) is not None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """
        `PreTrainedModel.from_pretrained`, plus [`realign_cpu_tensors`] so outputs match the saved model's exactly,
        and strict checks: a truncated or corrupted weights file, weights that do not match `config.json` (missing,
        unexpected or differently shaped tensors) and a pickled `.bin` that is not weights-only raise a clear error
        instead of returning a partly random model. `ignore_mismatched_sizes=True` re-initialises differently shaped
        tensors as in transformers. With `output_loading_info=True` the call returns `(model, loading_info)` as in
        transformers, and missing or unexpected tensors are reported there (and logged) rather than raised: the caller
        asked to inspect them. So does `from_pretrained(None, config=config, state_dict=state_dict)`, where the caller
        supplies the weights (the missing ones are initialised by `_init_weights`). Differently shaped tensors still
        raise unless `ignore_mismatched_sizes=True`.
        """
        output_loading_info = kwargs.pop("output_loading_info", False)
        ignore_mismatched_sizes = kwargs.pop("ignore_mismatched_sizes", False)
        source = os.fspath(pretrained_model_name_or_path) if pretrained_model_name_or_path is not None else None
        if kwargs.get("subfolder") and source is not None:
            source = os.path.join(source, kwargs["subfolder"])
        try:
            model, info = super().from_pretrained(
                pretrained_model_name_or_path,
                *args,
                output_loading_info=True,
                ignore_mismatched_sizes=True,
                **kwargs,
            )
        except (SafetensorError, pickle.UnpicklingError) as error:
            raise unreadable_weights_error(source, error) from error
        problems = loading_problems(info, ignore_mismatched_sizes)
        caller_checks = output_loading_info or (source is None and kwargs.get("state_dict") is not None)
        if caller_checks and not loading_problems({"mismatched_keys": info.get("mismatched_keys")}, False):
            # The caller asked for the report to inspect it, or passed the weights in memory, as in transformers:
            # missing and unexpected tensors are reported (missing ones initialised) with a warning, not raised.
            if problems:
                logger.warning("Loading %s from %r: %s.", cls.__name__, source, "; ".join(problems))
            problems = []
        if problems:
            raise ValueError(
                f"The weights in {source!r} do not match its config.json ({cls.__name__}: {config_summary(model)}): "
                + "; ".join(problems)
                + ". The config and the weights come from different models, or the download is incomplete: re-save "
                "or re-download the folder (a Wan checkpoint loads with UniViGUModel.from_wan; "
                "ignore_mismatched_sizes=True re-initialises differently shaped tensors on purpose)."
            )
        model = realign_cpu_tensors(model)
        return (model, info) if output_loading_info else model

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        is_main_process: bool = True,
        state_dict: dict | None = None,
        push_to_hub: bool = False,
        max_shard_size: int | str = "50GB",
        variant: str | None = None,
        token: str | bool | None = None,
        save_peft_format: bool = True,
        **kwargs,
    ):
        """
        `PreTrainedModel.save_pretrained` (same files and arguments, `push_to_hub` included), made atomic: the folder
        is written into a staging folder and then moved into place (see [`univigu_hf.utils.saving`]), so an
        interrupted save leaves the previous complete save or none. Ranks that write nothing in distributed saves
        call it directly. The arguments are named as in transformers so that callers that read the signature
        (diffusers' `DiffusionPipeline.save_pretrained` passes `variant` and `max_shard_size` only to components that
        declare them) pass them on.
        """
        kwargs.update(
            is_main_process=is_main_process,
            state_dict=state_dict,
            push_to_hub=push_to_hub,
            max_shard_size=max_shard_size,
            variant=variant,
            token=token,
            save_peft_format=save_peft_format,
        )
        should_save = getattr(self, "should_save_on_this_rank", lambda main: main)(is_main_process)
        if not should_save or kwargs.get("distributed_checkpoint"):
            return super().save_pretrained(save_directory, **kwargs)
        return atomic_save_pretrained(super().save_pretrained, save_directory, **kwargs)

    @classmethod
    def _from_config(cls, config, **kwargs):
        """
        `PreTrainedModel._from_config` (behind `AutoModel.from_config(config, dtype=...)`), with the
        `_keep_in_fp32_modules_strict` in float32 as `from_pretrained(..., dtype=...)` keeps them: the same dtypes either way.
        """
        model = super()._from_config(config, **kwargs)
        for name, parameter in model.named_parameters():
            if parameter.is_floating_point() and parameter.dtype != torch.float32 and cls.keeps_fp32(name):
                parameter.data = parameter.data.float()
        return model

    @property
    def dtype(self) -> torch.dtype:
        """`torch.dtype`: the compute dtype, i.e. that of the weights outside the fp32-kept modules."""
        for name, parameter in self.named_parameters():
            if parameter.is_floating_point() and not self.keeps_fp32(name):
                return parameter.dtype
        return super().dtype

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        # Same random init as diffusers' Wan (PyTorch defaults) and the official text branch. `init.*` skips tensors
        # that were loaded from a checkpoint.
        dim = self.config.hidden_size
        if isinstance(module, (nn.Linear, nn.Conv3d)):
            if module is getattr(self, "text_proj_out", None):
                init.zeros_(module.weight)
                init.zeros_(module.bias)
                return
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                fan_in = module.weight[0].numel()
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=1.0)
        elif isinstance(module, (nn.LayerNorm, nn.RMSNorm)):
            if module.weight is not None:
                init.ones_(module.weight)
            if getattr(module, "bias", None) is not None:
                init.zeros_(module.bias)
        elif isinstance(module, WanRotaryPosEmbed):
            fresh = WanRotaryPosEmbed(module.attention_head_dim, module.patch_size, module.max_seq_len)
            init.copy_(module.freqs_cos, fresh.freqs_cos)
            init.copy_(module.freqs_sin, fresh.freqs_sin)
        if isinstance(module, WanTransformerBlock) or module is self:
            for name in ("scale_shift_table", "text_scale_shift_table"):
                table = getattr(module, name, None)
                if isinstance(table, nn.Parameter):
                    init.normal_(table, mean=0.0, std=dim**-0.5)


class UniViGUModel(DiffusersToolboxMixin, UniViGUPreTrainedModel):
    r"""
    The Uni-ViGU unified transformer: video latents and caption tokens in one sequence.

    Video tokens are denoised by continuous flow matching (the output is Wan's velocity `noise - x0`), caption tokens
    by discrete flow matching (the output is logits of the clean token). With no text tokens the model computes
    exactly diffusers' [`WanTransformer3DModel`] with the same weights: all video/shared parameters keep Wan's names.

    Args:
        config ([`UniViGUConfig`]): the model configuration.
    """

    def __init__(self, config: UniViGUConfig):
        super().__init__(config)
        dim = config.hidden_size

        # Wan's video path and shared modules (names identical to `WanTransformer3DModel`).
        self.rope = WanRotaryPosEmbed(config.attention_head_dim, config.patch_size, config.rope_max_seq_len)
        self.patch_embedding = nn.Conv3d(
            config.in_channels, dim, kernel_size=config.patch_size, stride=config.patch_size
        )
        self.condition_embedder = WanTimeTextImageEmbedding(
            dim=dim, time_freq_dim=config.freq_dim, time_proj_dim=dim * 6, text_embed_dim=config.text_dim
        )
        self.blocks = nn.ModuleList(
            [
                UniViGUTransformerBlock(
                    dim,
                    config.ffn_dim,
                    config.num_attention_heads,
                    config.qk_norm,
                    config.cross_attn_norm,
                    config.eps,
                    text_ffn_dim=config.effective_text_ffn_dim,
                )
                for _ in range(config.num_layers)
            ]
        )
        self.norm_out = FP32LayerNorm(dim, config.eps, elementwise_affine=False)
        self.proj_out = nn.Linear(dim, config.out_channels * math.prod(config.patch_size))
        self.scale_shift_table = nn.Parameter(torch.randn(1, 2, dim) / dim**0.5)

        # The text branch.
        self.text_embedding = nn.Embedding(config.text_vocab_size, dim)
        self.text_time_embedding = UniViGUTextTimeEmbedding(dim, config.freq_dim)
        self.text_scale_shift_table = nn.Parameter(torch.randn(1, 2, dim) / dim**0.5)
        # The official text head norm: LayerNorm with a weight and no bias, PyTorch's default eps.
        self.text_norm_out = FP32LayerNorm(dim, eps=1e-5, elementwise_affine=True, bias=False)
        self.text_proj_out = nn.Linear(dim, config.text_vocab_size)

        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.text_embedding

    def get_output_embeddings(self) -> nn.Linear:
        """The text head's projection to the caption vocabulary (resized with the embedding, never tied to it)."""
        return self.text_proj_out

    def set_output_embeddings(self, value: nn.Linear):
        self.text_proj_out = value

    def push_to_hub(
        self,
        repo_id: str,
        *,
        commit_message: str | None = None,
        private: bool | None = None,
        token: bool | str | None = None,
        revision: str | None = None,
        create_pr: bool = False,
        card_data: dict | None = None,
        **kwargs,
    ):
        """
        Publishes the model (or, with PEFT adapters attached, the adapter) with a UniViGU model card: see
        [`univigu_hf.hub.push_to_hub`], which takes the same arguments (`metrics=`, `training=`, `base_model=`, ...).

        Returns:
            `huggingface_hub.CommitInfo` (a `str`: the commit URL).
        """
        from ..hub import push_to_hub

        return push_to_hub(
            self,
            repo_id,
            private=bool(private),
            commit_message=commit_message,
            card_data=card_data,
            token=token,
            revision=revision,
            create_pr=create_pr,
            **kwargs,
        )

    def set_input_embeddings(self, value: nn.Embedding):
        self.text_embedding = value

    # ----------------------------------------------------------------------------------------------------------------
    # Forward
    # ----------------------------------------------------------------------------------------------------------------
    def forward(
        self,
        video_latents: torch.Tensor | None = None,
        text_ids: torch.LongTensor | None = None,
        video_timestep: torch.Tensor | None = None,
        text_timestep: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        text_attention_mask: torch.Tensor | None = None,
        video_context: UniViGUVideoContext | None = None,
        return_video_context: bool = False,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> UniViGUModelOutput | tuple:
        r"""
        Args:
            video_latents (`torch.Tensor` of shape `(batch_size, in_channels, frames, height, width)`, *optional*):
                Noisy (or clean) video latents; frames/height/width must be multiples of `patch_size`.
            text_ids (`torch.LongTensor` of shape `(batch_size, text_length)`, *optional*):
                Noisy (or clean) caption token ids in `[0, text_vocab_size)`.
            video_timestep (`torch.Tensor` of shape `(batch_size,)`, *optional*):
                Video timesteps on Wan's 0..1000 scale (1000 = pure noise, 0 = clean). A scalar is broadcast.
                Required with `video_latents`.
            text_timestep (`torch.Tensor` of shape `(batch_size,)`, *optional*):
                Text timesteps on the same scale (`round((1 - t) * 1000)` for text time `t`). Required with
                `text_ids`.
            encoder_hidden_states (`torch.Tensor` of shape `(batch_size, sequence_length, text_dim)`, *optional*):
                Prompt embeddings (umT5) for the cross-attention. `None` means an all-zero condition, the official
                captioning default (one zero token is exactly equivalent to any number of them).
            text_attention_mask (`torch.Tensor` of shape `(batch_size, text_length)`, *optional*):
                1/`True` for real caption tokens, 0/`False` for padding that no token may attend to.
            video_context ([`UniViGUVideoContext`], *optional*):
                Cached video keys/values (from `return_video_context=True`) that stand in for the video: only the
                text tokens are computed, their queries attending to `[cached video keys; text keys]`. Takes
                `text_ids` without `video_latents` or `encoder_hidden_states` (the context holds the condition).
                Equals the full forward when the context is `exact` (`video_attends_text=False`).
            return_video_context (`bool`, defaults to `False`):
                Also return the [`UniViGUVideoContext`] of this forward (needs `video_latents`).
            output_hidden_states (`bool`, *optional*):
                Also return the token stream after the embeddings and after each block (defaults to
                `config.output_hidden_states`).
            return_dict (`bool`, *optional*):
                Whether to return a [`UniViGUModelOutput`] instead of a tuple (defaults to `config.return_dict`, `True`).

        Returns:
            [`UniViGUModelOutput`] or `tuple`: `(video_velocity, text_logits)`, `None` for an absent modality, plus
            `video_context` with `return_video_context=True` and `hidden_states` with `output_hidden_states=True`.
        """
        batch_size = check_forward_inputs(
            self.config,
            video_latents,
            text_ids,
            video_timestep,
            text_timestep,
            encoder_hidden_states,
            text_attention_mask,
            video_context,
            return_video_context,
        )
        config = self.config
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        return_dict = config.return_dict if return_dict is None else return_dict
        if encoder_hidden_states is None and video_context is None:
            encoder_hidden_states = self.patch_embedding.weight.new_zeros(batch_size, 1, config.text_dim)
            if video_latents is not None:
                encoder_hidden_states = encoder_hidden_states.to(video_latents.dtype)

        video_hidden = video_temb = video_modulation = rotary_emb = None
        if video_latents is not None:
            _, _, num_frames, height, width = video_latents.shape
            p_t, p_h, p_w = config.patch_size
            post_patch_shape = (num_frames // p_t, height // p_h, width // p_w)
            rotary_emb = self.rope(video_latents)
            video_hidden = self.patch_embedding(video_latents).flatten(2).transpose(1, 2).contiguous()
            video_temb, video_modulation, encoder_hidden_states, _ = self.condition_embedder(
                _expand_timestep(video_timestep, batch_size, video_latents.device), encoder_hidden_states
            )
            video_modulation = video_modulation.unflatten(1, (6, -1))
        elif video_context is not None:
            encoder_hidden_states = video_context.encoder_hidden_states
        else:
            encoder_hidden_states = self.condition_embedder.text_embedder(encoder_hidden_states)

        text_hidden = text_temb = text_modulation = text_rotary_emb = attention_mask = None
        if text_ids is not None:
            text_hidden = self.text_embedding(text_ids)
            if video_hidden is not None:
                text_hidden = text_hidden.to(video_hidden.dtype)
            elif video_context is not None and not torch.is_grad_enabled():
                text_hidden = text_hidden.to(video_context.hidden_dtype)
            text_temb, text_modulation = self.text_time_embedding(
                _expand_timestep(text_timestep, batch_size, text_ids.device), dtype=encoder_hidden_states.dtype
            )
            text_modulation = text_modulation.unflatten(1, (6, -1))
            text_rotary_emb = text_rotary_embedding(
                text_ids.shape[1], config.attention_head_dim, config.text_rope_theta, text_ids.device
            )
            # An all-True mask changes nothing, so eager mode drops it (the faster unmasked attention); a compiled
            # graph keeps it rather than branch on the data.
            if text_attention_mask is not None and (
                torch.compiler.is_compiling() or not bool(text_attention_mask.bool().all())
            ):
                num_video = video_hidden.shape[1] if video_hidden is not None else 0
                num_video = video_context.num_video_tokens if video_context is not None else num_video
                key_mask = text_attention_mask.bool()
                if num_video:
                    key_mask = torch.cat([key_mask.new_ones(batch_size, num_video), key_mask], dim=1)
                attention_mask = key_mask[:, None, None, :]

        video_keys, video_values, cross_outputs = [], [], []
        all_hidden_states = [] if output_hidden_states else None
        for index, block in enumerate(self.blocks):
            if output_hidden_states:
                video_hidden, text_hidden = _record_hidden_states(all_hidden_states, video_hidden, text_hidden)
            args = (
                video_hidden,
                text_hidden,
                video_modulation,
                rotary_emb,
                encoder_hidden_states,
                text_modulation,
                text_rotary_emb,
                attention_mask,
                config.video_attends_text,
                None if video_context is None else (video_context.keys[index], video_context.values[index]),
            )
            if return_video_context:
                video_hidden, text_hidden, (key, value, cross) = block(*args, return_video_key_value=True)
                video_keys.append(key)
                video_values.append(value)
                cross_outputs.append(cross)
            elif video_context is not None and not torch.is_grad_enabled():
                video_hidden, text_hidden = block(
                    *args,
                    key_value_buffers=video_context.key_value_buffers(index, text_hidden.shape[1]),
                    cross_attention_output=video_context.cross_attention_output(index),
                )
            else:
                video_hidden, text_hidden = block(*args)

        if text_hidden is not None and text_hidden.shape[1] == 0:  # the blocks' stand-in for "no text stream"
            text_hidden = None
        if output_hidden_states:
            video_hidden, text_hidden = _record_hidden_states(all_hidden_states, video_hidden, text_hidden)
            all_hidden_states = tuple(all_hidden_states)
        video_velocity = text_logits = None
        if video_hidden is not None:
            video_velocity = self._video_head(video_hidden, video_temb, post_patch_shape)
        if text_hidden is not None:
            shift, scale = (self.text_scale_shift_table.to(text_temb.device) + text_temb.unsqueeze(1)).chunk(2, dim=1)
            text_hidden = (self.text_norm_out(text_hidden.float()) * (1 + scale) + shift).type_as(text_hidden)
            text_logits = self.text_proj_out(text_hidden)

        new_context = None
        if return_video_context:
            new_context = UniViGUVideoContext(
                keys=tuple(video_keys),
                values=tuple(video_values),
                encoder_hidden_states=encoder_hidden_states,
                hidden_dtype=video_hidden.dtype,
                exact=not config.video_attends_text,
                cross_attention_outputs=None if cross_outputs[0] is None else tuple(cross_outputs),
            )
            if text_hidden is not None and not torch.is_grad_enabled():
                new_context.reserve_text_rows(text_hidden.shape[1])
        if not return_dict:
            return (
                (video_velocity, text_logits)
                + ((new_context,) if return_video_context else ())
                + ((all_hidden_states,) if output_hidden_states else ())
            )
        return UniViGUModelOutput(
            video_velocity=video_velocity,
            text_logits=text_logits,
            video_context=new_context,
            hidden_states=all_hidden_states,
        )

    def _video_head(self, hidden_states: torch.Tensor, temb: torch.Tensor, post_patch_shape: tuple) -> torch.Tensor:
        # Wan's output norm, projection and unpatchify.
        shift, scale = (self.scale_shift_table.to(temb.device) + temb.unsqueeze(1)).chunk(2, dim=1)
        shift = shift.to(hidden_states.device)
        scale = scale.to(hidden_states.device)
        hidden_states = (self.norm_out(hidden_states.float()) * (1 + scale) + shift).type_as(hidden_states)
        hidden_states = self.proj_out(hidden_states)
        p_t, p_h, p_w = self.config.patch_size
        hidden_states = hidden_states.reshape(hidden_states.shape[0], *post_patch_shape, p_t, p_h, p_w, -1)
        hidden_states = hidden_states.permute(0, 7, 1, 4, 2, 5, 3, 6)
        return hidden_states.flatten(6, 7).flatten(4, 5).flatten(2, 3)

    # ----------------------------------------------------------------------------------------------------------------
    # Building from Wan
    # ----------------------------------------------------------------------------------------------------------------
    @classmethod
    def from_wan(
        cls,
        wan: "WanTransformer3DModel | str | os.PathLike",
        *,
        text_vocab_size: int,
        text_ffn_dim: int | None = None,
        torch_dtype: torch.dtype | None = None,
        subfolder: str | None = None,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool | None = None,
        **config_overrides,
    ) -> "UniViGUModel":
        r"""
        Grows a Uni-ViGU model out of a Wan2.1 text-to-video transformer: the video path keeps the Wan weights (so
        the video-only output is unchanged) and a fresh text branch is added.

        The new text parameters are initialised as the official release does: the text FFN experts copy the video
        FFNs (`text_ffn_dim=None`); the text timestep embedder and the text output modulation table copy Wan's; the
        caption-token embedding is N(0, 1) (PyTorch's default, drawn from the global RNG: call `torch.manual_seed`
        first for a reproducible model); the text head's norm weight is 1 and its projection is zero, so the first
        logits are uniform. A narrower expert (`text_ffn_dim < ffn_dim`) keeps the `text_ffn_dim` hidden units of
        the video FFN with the largest `||w_in_i|| * ||w_out_i||` (magnitude pruning); a wider one copies all units
        and adds new ones whose output weights are zero, so it starts as the video FFN.

        Args:
            wan (`WanTransformer3DModel`, `str` or `os.PathLike`):
                A Wan transformer (its weights are copied, never shared) or the path/repo id of a diffusers Wan
                checkpoint: a transformer folder, or a pipeline folder with a `transformer/` subfolder.
            text_vocab_size (`int`):
                Size of the caption vocabulary (the tokenizer's `vocab_size`, plus one if a mask token is added).
            text_ffn_dim (`int`, *optional*):
                Inner width of the text experts; `None` = the video FFN's width.
            torch_dtype (`torch.dtype`, *optional*):
                dtype to load a checkpoint in (fp32 modules stay fp32, as in diffusers).
            subfolder (`str`, *optional*):
                Subfolder of the Wan checkpoint; detected (`transformer` or the root) when `None`.
            revision, cache_dir, local_files_only:
                Passed to `WanTransformer3DModel.from_pretrained`.
            **config_overrides:
                Other [`UniViGUConfig`] fields (`max_text_length`, `video_attends_text`, `pad_token_id`,
                `mask_token_id`, ...).

        Returns:
            [`UniViGUModel`]: the unified model, in eval mode.
        """
        if isinstance(wan, (str, os.PathLike)):
            loading_kwargs = {"revision": revision, "cache_dir": cache_dir, "local_files_only": local_files_only}
            loading_kwargs = {k: v for k, v in loading_kwargs.items() if v is not None}
            if subfolder is None:
                subfolder = detect_wan_subfolder(os.fspath(wan), loading_kwargs)
            loading_kwargs.update(diffusers_dtype_kwargs(torch_dtype))
            wan_model = WanTransformer3DModel.from_pretrained(wan, subfolder=subfolder, **loading_kwargs)
            state_dict = wan_model.state_dict()
            wan_config = dict(wan_model.config)
            share = True
        elif isinstance(wan, WanTransformer3DModel):
            state_dict = wan.state_dict()
            wan_config = dict(wan.config)
            share = False
        else:
            raise TypeError(
                "wan must be a diffusers WanTransformer3DModel or the path/repo id of a diffusers Wan checkpoint, "
                f"got {describe_value(wan)}"
            )
        config = UniViGUConfig.from_wan_config(
            wan_config, text_vocab_size=text_vocab_size, text_ffn_dim=text_ffn_dim, **config_overrides
        )
        model = cls._from_wan_state_dict(config, state_dict, share=share)
        model.config._name_or_path = wan_config.get("_name_or_path", "")
        return model.eval()

    def to_wan(self) -> WanTransformer3DModel:
        """
        The video path as a diffusers `WanTransformer3DModel` (the inverse of [`from_wan`]): the text branch is
        dropped and every other weight is copied, so the result's output equals this model's video-only output
        (`text_ids=None`). Used to save a Wan text-to-video base trained with `trainable="video"`.

        Returns:
            `WanTransformer3DModel`: a new module on this model's device, with this model's dtypes, in eval mode.
        """
        with torch.device("meta"):
            wan = WanTransformer3DModel(**self.config.to_wan_config())
        state_dict = {k: v.detach().clone() for k, v in self.state_dict().items() if not is_text_parameter(k)}
        wan.load_state_dict(state_dict, strict=True, assign=True)
        wan.rope = WanRotaryPosEmbed(
            self.config.attention_head_dim, self.config.patch_size, self.config.rope_max_seq_len
        ).to(state_dict["patch_embedding.weight"].device)
        return wan.eval()

    @classmethod
    def _from_wan_state_dict(cls, config: UniViGUConfig, wan_state_dict: dict, share: bool) -> "UniViGUModel":
        with torch.device("meta"):
            model = cls(config)
        expected_wan = {k for k in model.state_dict() if not is_text_parameter(k)}
        check_state_dict_keys("The Wan state dict", expected_wan, wan_state_dict)
        state_dict = {k: (v if share else v.detach().clone()) for k, v in wan_state_dict.items()}
        state_dict.update(initial_text_parameters(config, state_dict))
        return cls._from_full_state_dict(config, state_dict, meta_model=model)

    @classmethod
    def _from_full_state_dict(
        cls, config: UniViGUConfig, state_dict: dict, meta_model: "UniViGUModel | None" = None
    ) -> "UniViGUModel":
        """Builds the model on the meta device (or takes one) and adopts the given tensors (no copy)."""
        if meta_model is None:
            with torch.device("meta"):
                meta_model = cls(config)
        model = meta_model
        check_state_dict_keys("The state dict", set(model.state_dict()), state_dict)
        model.load_state_dict(state_dict, strict=True, assign=True)
        # Non-persistent buffers (the video RoPE tables) are still on meta.
        device = state_dict["patch_embedding.weight"].device
        model.rope = WanRotaryPosEmbed(config.attention_head_dim, config.patch_size, config.rope_max_seq_len).to(
            device
        )
        return model


@functools.cache
def _module_pattern(modules: tuple[str, ...]) -> re.Pattern:
    """A pattern that finds any of `modules` as a whole component of a parameter name."""
    return re.compile(r"(?:^|\.)(?:" + "|".join(map(re.escape, modules)) + r")(?:\.|$)")


def _expand_timestep(timestep, batch_size: int, device: torch.device) -> torch.Tensor:
    timestep = torch.as_tensor(timestep, device=device)
    return timestep.reshape(-1).expand(batch_size)


def _record_hidden_states(record: list, video_hidden: torch.Tensor | None, text_hidden: torch.Tensor | None) -> tuple:
    """Appends the `[video; text]` token stream to `record` and returns the two streams as views of it, so the
    recorded tensor is part of the graph (gradients with respect to it exist, as for transformers' hidden states)."""
    if text_hidden is not None and text_hidden.shape[1] == 0:
        text_hidden = None
    if video_hidden is None or text_hidden is None:
        record.append(video_hidden if text_hidden is None else text_hidden)
        return video_hidden, text_hidden
    joint = torch.cat([video_hidden, text_hidden], dim=1)
    record.append(joint)
    return joint[:, : video_hidden.shape[1]], joint[:, video_hidden.shape[1] :]


__all__ = ["UniViGUModel", "UniViGUModelOutput", "UniViGUPreTrainedModel"]
