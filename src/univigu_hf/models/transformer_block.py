"""The UniViGU transformer block (a Wan block over video and text tokens, with the text FFN expert) and the text
stream's timestep embedder."""

import torch
import torch.nn as nn
from diffusers.models.attention import FeedForward
from diffusers.models.transformers.transformer_wan import WanTimeTextImageEmbedding, WanTransformerBlock
from transformers.modeling_layers import GradientCheckpointingLayer

from .attention_processor import JointAttentionInputs, UniViGUAttnProcessor


class UniViGUTextTimeEmbedding(nn.Module):
    """The text stream's timestep embedder: Wan's sinusoidal features -> MLP -> SiLU -> 6-way modulation projection."""

    def __init__(self, dim: int, time_freq_dim: int):
        super().__init__()
        # Reuse Wan's embedder class for identical numerics; its prompt projection is not needed here.
        wan_embedder = WanTimeTextImageEmbedding(dim, time_freq_dim, dim * 6, text_embed_dim=1)
        self.timesteps_proj = wan_embedder.timesteps_proj
        self.time_embedder = wan_embedder.time_embedder
        self.act_fn = wan_embedder.act_fn
        self.time_proj = wan_embedder.time_proj

    def forward(self, timestep: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        timestep = self.timesteps_proj(timestep)
        embedder_dtype = next(iter(self.time_embedder.parameters())).dtype
        if timestep.dtype != embedder_dtype and embedder_dtype != torch.int8:
            timestep = timestep.to(embedder_dtype)
        temb = self.time_embedder(timestep).to(dtype)
        return temb, self.time_proj(self.act_fn(temb))


class UniViGUTransformerBlock(GradientCheckpointingLayer, WanTransformerBlock):
    """
    A Wan block over video and text tokens: shared `norm1`/`attn1` (joint self-attention), `attn2`/`norm2`
    (cross-attention to the prompt) and modulation table; per-modality shift/scale/gate from each modality's
    timestep embedding; `ffn` for video tokens and the `text_ffn` expert for text tokens. A transformers
    `GradientCheckpointingLayer`: `model.gradient_checkpointing_enable()` checkpoints each block in training mode.
    """

    def __init__(
        self,
        dim: int,
        ffn_dim: int,
        num_heads: int,
        qk_norm: str = "rms_norm_across_heads",
        cross_attn_norm: bool = False,
        eps: float = 1e-6,
        text_ffn_dim: int | None = None,
    ):
        super().__init__(dim, ffn_dim, num_heads, qk_norm, cross_attn_norm, eps, added_kv_proj_dim=None)
        self.attn1.set_processor(UniViGUAttnProcessor())
        self.text_ffn = FeedForward(dim, inner_dim=text_ffn_dim or ffn_dim, activation_fn="gelu-approximate")

    def _modulation(self, temb: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (self.scale_shift_table + temb.float()).chunk(6, dim=1)

    def forward(
        self,
        hidden_states: torch.Tensor | None,
        encoder_hidden_states: torch.Tensor | None,
        temb: torch.Tensor | None,
        text_temb: torch.Tensor | None,
        prompt_hidden_states: torch.Tensor,
        attention_inputs: JointAttentionInputs,
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """
        The two token streams are named as in diffusers' dual-stream blocks (MMDiT: `hidden_states` and
        `encoder_hidden_states` are the two streams a block updates), which diffusers' cache hooks rely on; the prompt
        condition of Wan's cross-attention, the model's `encoder_hidden_states`, is `prompt_hidden_states` here.
        The tensors that carry gradients are positional arguments (as transformers' gradient checkpointing with
        `use_reentrant=True` needs); everything else the self-attention takes is in `attention_inputs`.

        Args:
            hidden_states: video tokens `(B, L_v, D)`, or `None` for a text-only step (against a video cache).
            encoder_hidden_states: caption tokens `(B, L_t, D)`; `None` or `L_t = 0` for none.
            temb / text_temb: per-modality modulation `(B, 6, D)`.
            prompt_hidden_states: projected prompt embeddings `(B, L_c, D)`, the cross-attention's keys and values.
            attention_inputs ([`JointAttentionInputs`]): the rotary tables, key-padding mask and
                `video_attends_text` of the joint self-attention, and this block's layer of the video cache. A step
                with video tokens stores their keys/values (and, for a one-token condition, the cross-attention
                output, the same for every token) in the cache layer; a text-only step reads them.

        Returns:
            `tuple`: the updated video tokens (`None` when absent) and text tokens (`(B, 0, D)` when absent, so that
            the second output is always a tensor when there is video).
        """
        text_hidden_states = encoder_hidden_states
        if text_hidden_states is not None and text_hidden_states.shape[1] == 0:
            text_hidden_states = None
        streams = []  # (tokens, shift, scale, gate, c_shift, c_scale, c_gate, ffn)
        if hidden_states is not None:
            streams.append((hidden_states, *self._modulation(temb), self.ffn))
        if text_hidden_states is not None:
            streams.append((text_hidden_states, *self._modulation(text_temb), self.text_ffn))
        lengths = [s[0].shape[1] for s in streams]
        num_video = hidden_states.shape[1] if hidden_states is not None else 0
        video_cache = attention_inputs.video_cache

        def join(tensors):
            return tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=1)

        def split(tensor):
            return [tensor] if len(lengths) == 1 else list(torch.split(tensor, lengths, dim=1))

        # 1. Joint self-attention, per-modality modulation and gates.
        normed = [(self.norm1(x.float()) * (1 + scale) + shift).type_as(x) for x, shift, scale, *_ in streams]
        attn_output = self.attn1(
            join(normed),
            None,
            attention_inputs.attention_mask,
            attention_inputs.rotary_emb,
            text_rotary_emb=attention_inputs.text_rotary_emb,
            num_video_tokens=num_video,
            video_attends_text=attention_inputs.video_attends_text,
            video_cache=video_cache,
        )
        tokens = [(x.float() + out * gate).type_as(x) for (x, _, _, gate, *_), out in zip(streams, split(attn_output))]

        # 2. Cross-attention to the prompt, shared by both modalities (ungated, as Wan).
        joined = join(tokens)
        cross = None if video_cache is None else video_cache.reused_cross_attention_output(num_video)
        if cross is None:
            cross = self.attn2(self.norm2(joined.float()).type_as(joined), prompt_hidden_states, None, None)
            if video_cache is not None:
                video_cache.update_cross_attention(cross, num_video, prompt_hidden_states.shape[1])
        tokens = split(joined + cross)

        # 3. Modality experts: Wan's FFN for video, the text FFN for text.
        outputs = []
        for x, (_, _, _, _, c_shift, c_scale, c_gate, ffn) in zip(tokens, streams):
            normed = (self.norm3(x.float()) * (1 + c_scale) + c_shift).type_as(x)
            outputs.append((x.float() + ffn(normed).float() * c_gate).type_as(x))

        video_out = outputs.pop(0) if hidden_states is not None else None
        text_out = outputs.pop(0) if text_hidden_states is not None else None
        if text_out is None and video_out is not None:
            text_out = video_out.new_zeros(video_out.shape[0], 0, video_out.shape[2])
        return video_out, text_out


__all__ = ["UniViGUTextTimeEmbedding", "UniViGUTransformerBlock"]
