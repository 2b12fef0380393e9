"""UniViGU: a Wan2.1 video diffusion transformer that also denoises caption tokens (transformers `PreTrainedModel`)."""

import math
import os
from dataclasses import dataclass

import torch
import torch.nn as nn
from diffusers import WanTransformer3DModel
from diffusers.models.normalization import FP32LayerNorm
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed, WanTimeTextImageEmbedding
from transformers.utils import ModelOutput

from ..utils.checks import describe_value
from ..utils.loading import check_state_dict_keys
from ..utils.torch_utils import diffusers_dtype_kwargs
from .attention_processor import JointAttentionInputs, text_rotary_embedding
from .configuration_univigu import UniViGUConfig
from .diffusers_toolbox import DiffusersToolboxMixin
from .input_checks import check_forward_inputs
from .pretrained import UniViGUPreTrainedModel
from .transformer_block import UniViGUTextTimeEmbedding, UniViGUTransformerBlock
from .video_cache import UniViGUVideoCache
from .wan_growth import detect_wan_subfolder, initial_text_parameters, is_text_parameter


@dataclass
class UniViGUModelOutput(ModelOutput):
    """
    Output of [`UniViGUModel`].

    Args:
        video_velocity (`torch.Tensor` of shape `(batch_size, out_channels, frames, height, width)`, *optional*):
            Predicted flow-matching velocity (`noise - x0`) of the video latents; `None` when no video was given.
        text_logits (`torch.Tensor` of shape `(batch_size, text_length, text_vocab_size)`, *optional*):
            Logits of the clean caption token at each text position; `None` when no text was given.
        video_context ([`UniViGUVideoCache`], *optional*):
            The video cache this forward filled (the video keys/values of every block), with
            `return_video_context=True`.
        hidden_states (`tuple(torch.Tensor)`, *optional*):
            With `output_hidden_states=True`: the token stream after the embeddings and after each block
            (`num_layers + 1` tensors of shape `(batch_size, video_tokens + text_tokens, hidden_size)`, the video tokens
            first, as the joint self-attention sees them; only the streams the call computes).
    """

    video_velocity: torch.Tensor | None = None
    text_logits: torch.Tensor | None = None
    video_context: UniViGUVideoCache | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


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
        video_context: UniViGUVideoCache | None = None,
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
            video_context ([`UniViGUVideoCache`] (`UniViGUVideoContext`), *optional*):
                A video cache (from `return_video_context=True`) that stands in for the video: only the text tokens
                are computed, their queries attending to `[cached video keys; text keys]`. Takes `text_ids` without
                `video_latents` or `encoder_hidden_states` (the cache holds the condition). Equals the full forward
                when the cache is `exact` (`video_attends_text=False`).
            return_video_context (`bool`, defaults to `False`):
                Create a [`UniViGUVideoCache`], fill it during this forward and return it (needs `video_latents`).
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
        # The argument keeps Wan's name (`WanTransformer3DModel`, `WanPipeline`); inside the model the prompt is
        # `prompt_hidden_states`, and the blocks' `encoder_hidden_states` are the caption tokens (diffusers' MMDiT name).
        prompt_hidden_states = encoder_hidden_states
        if prompt_hidden_states is None and video_context is None:
            prompt_hidden_states = self.patch_embedding.weight.new_zeros(batch_size, 1, config.text_dim)
            if video_latents is not None:
                prompt_hidden_states = prompt_hidden_states.to(video_latents.dtype)
        # The step with video fills a new cache (`return_video_context=True`); a text-only step reads `video_context`.
        video_cache = video_context
        if return_video_context:
            video_cache = UniViGUVideoCache(config.num_layers, exact=not config.video_attends_text)

        video_hidden = video_temb = video_modulation = rotary_emb = None
        if video_latents is not None:
            _, _, num_frames, height, width = video_latents.shape
            p_t, p_h, p_w = config.patch_size
            post_patch_shape = (num_frames // p_t, height // p_h, width // p_w)
            rotary_emb = self.rope(video_latents)
            video_hidden = self.patch_embedding(video_latents).flatten(2).transpose(1, 2).contiguous()
            video_temb, video_modulation, prompt_hidden_states, _ = self.condition_embedder(
                _expand_timestep(video_timestep, batch_size, video_latents.device), prompt_hidden_states
            )
            video_modulation = video_modulation.unflatten(1, (6, -1))
            if video_cache is not None:
                video_cache.update_prompt(prompt_hidden_states, video_hidden.dtype)
        elif video_cache is not None:
            prompt_hidden_states = video_cache.prompt_hidden_states
        else:
            prompt_hidden_states = self.condition_embedder.text_embedder(prompt_hidden_states)

        text_hidden = text_temb = text_modulation = text_rotary_emb = attention_mask = None
        if text_ids is not None:
            text_hidden = self.text_embedding(text_ids)
            if video_hidden is not None:
                text_hidden = text_hidden.to(video_hidden.dtype)
            elif video_cache is not None and not torch.is_grad_enabled():
                text_hidden = text_hidden.to(video_cache.hidden_dtype)
            text_temb, text_modulation = self.text_time_embedding(
                _expand_timestep(text_timestep, batch_size, text_ids.device), dtype=prompt_hidden_states.dtype
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
                if video_hidden is not None:
                    num_video = video_hidden.shape[1]
                else:
                    num_video = video_cache.num_video_tokens if video_cache is not None else 0
                key_mask = text_attention_mask.bool()
                if num_video:
                    key_mask = torch.cat([key_mask.new_ones(batch_size, num_video), key_mask], dim=1)
                attention_mask = key_mask[:, None, None, :]

        all_hidden_states = [] if output_hidden_states else None
        for index, block in enumerate(self.blocks):
            if output_hidden_states:
                video_hidden, text_hidden = _record_hidden_states(all_hidden_states, video_hidden, text_hidden)
            # Each block gets its own layer of the cache, as transformers' layers index theirs.
            attention_inputs = JointAttentionInputs(
                rotary_emb,
                text_rotary_emb,
                attention_mask,
                config.video_attends_text,
                None if video_cache is None else video_cache.layers[index],
            )
            video_hidden, text_hidden = block(
                video_hidden, text_hidden, video_modulation, text_modulation, prompt_hidden_states, attention_inputs
            )

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

        new_cache = video_cache if return_video_context else None
        if not return_dict:
            return (
                (video_velocity, text_logits)
                + ((new_cache,) if return_video_context else ())
                + ((all_hidden_states,) if output_hidden_states else ())
            )
        return UniViGUModelOutput(
            video_velocity=video_velocity,
            text_logits=text_logits,
            video_context=new_cache,
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
