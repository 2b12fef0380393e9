"""Joint `[video; text]` self-attention for Wan's attention module, its inputs, and the rotary embeddings of the two
streams."""

from dataclasses import dataclass

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.transformers.transformer_wan import _get_qkv_projections

from .video_cache import UniViGUVideoCacheLayer


def _apply_wan_rotary_emb(hidden_states: torch.Tensor, freqs_cos: torch.Tensor, freqs_sin: torch.Tensor):
    # Wan's interleaved 3-D RoPE, written exactly as diffusers' `WanAttnProcessor` does (bit-exact video path).
    x1, x2 = hidden_states.unflatten(-1, (-1, 2)).unbind(-1)
    cos = freqs_cos[..., 0::2]
    sin = freqs_sin[..., 1::2]
    out = torch.empty_like(hidden_states)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out.type_as(hidden_states)


def _apply_text_rotary_emb(hidden_states: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    # Rotate-half 1-D RoPE over the whole head, in fp32, as the official Uni-ViGU text stream.
    x = hidden_states.float()
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat((-x2, x1), dim=-1)
    return (x * cos + rotated * sin).to(hidden_states.dtype)


def text_rotary_embedding(
    text_length: int, head_dim: int, theta: float, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Rotate-half 1-D rotary tables for text positions `0..text_length-1`.

    Returns:
        `tuple[torch.Tensor, torch.Tensor]`: fp32 `cos` and `sin` of shape `(1, text_length, 1, head_dim)`.
    """
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    positions = torch.arange(text_length, device=device, dtype=torch.float32)
    freqs = torch.outer(positions, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)[None, :, None, :]
    return emb.cos(), emb.sin()


@dataclass
class JointAttentionInputs:
    """
    What the joint `[video; text]` self-attention of a block takes besides its tokens. The model builds one per block
    and forward (the same tables, mask and setting; the block's own layer of the video cache) and the block hands it
    to its [`UniViGUAttnProcessor`].

    Args:
        rotary_emb (`tuple[torch.Tensor, torch.Tensor]`, *optional*): Wan's 3-D rotary tables of the video tokens.
        text_rotary_emb (`tuple[torch.Tensor, torch.Tensor]`, *optional*): the 1-D tables of the text tokens
            ([`text_rotary_embedding`]).
        attention_mask (`torch.Tensor` of shape `(batch, 1, 1, video_tokens + text_tokens)`, *optional*): key-padding
            mask (bool, `True` = attend); `None` attends to every key.
        video_attends_text (`bool`, defaults to `True`): whether video queries attend to text keys.
        video_cache ([`UniViGUVideoCacheLayer`], *optional*): the block's layer of the video cache.
    """

    rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None
    text_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None
    attention_mask: torch.Tensor | None = None
    video_attends_text: bool = True
    video_cache: UniViGUVideoCacheLayer | None = None


class UniViGUAttnProcessor:
    """
    Joint self-attention over `[video; text]` tokens for `WanAttention` (the block's `attn1`).

    Video tokens get Wan's 3-D RoPE and text tokens the 1-D rotate-half RoPE; a key-padding mask hides padded
    caption tokens. With `video_attends_text=False` video queries attend to video keys only, so the video path is
    exactly Wan's. Attention runs through diffusers' `dispatch_attention_fn`, so `set_attention_backend` applies.

    With a `video_cache` layer the keys and values go through its `update` (transformers' `Cache` pattern): a step
    with video tokens stores their keys (normed, rotated) and values; a text-only step (`num_video_tokens=0`) gets the
    cached video rows before its own, so its text queries attend to `[video; text]` as in the full forward.
    """

    _attention_backend = None
    _parallel_config = None

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        text_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        num_video_tokens: int | None = None,
        video_attends_text: bool = True,
        video_cache: UniViGUVideoCacheLayer | None = None,
    ) -> torch.Tensor:
        if encoder_hidden_states is not None:
            raise ValueError("UniViGUAttnProcessor is a self-attention processor; encoder_hidden_states must be None")
        num_tokens = hidden_states.shape[1]
        num_video = num_tokens if num_video_tokens is None else num_video_tokens

        query, key, value = _get_qkv_projections(attn, hidden_states, None)
        query = attn.norm_q(query).unflatten(2, (attn.heads, -1))
        key = attn.norm_k(key).unflatten(2, (attn.heads, -1))
        value = value.unflatten(2, (attn.heads, -1))

        if num_video == num_tokens:
            if rotary_emb is not None:
                query = _apply_wan_rotary_emb(query, *rotary_emb)
                key = _apply_wan_rotary_emb(key, *rotary_emb)
        else:
            query_video, query_text = query[:, :num_video], query[:, num_video:]
            key_video, key_text = key[:, :num_video], key[:, num_video:]
            if rotary_emb is not None and num_video > 0:
                query_video = _apply_wan_rotary_emb(query_video, *rotary_emb)
                key_video = _apply_wan_rotary_emb(key_video, *rotary_emb)
            if text_rotary_emb is not None:
                query_text = _apply_text_rotary_emb(query_text, *text_rotary_emb)
                key_text = _apply_text_rotary_emb(key_text, *text_rotary_emb)
            query = torch.cat([query_video, query_text], dim=1)
            key = torch.cat([key_video, key_text], dim=1)

        if video_cache is not None:
            key, value = video_cache.update(key, value, num_video)

        def attend(q, k, v, mask):
            return dispatch_attention_fn(
                q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False, backend=self._attention_backend
            )

        if video_attends_text or num_video in (0, num_tokens):
            hidden_states = attend(query, key, value, attention_mask)
        else:
            # Video queries see video keys only (exactly Wan); text queries see everything that is not padding.
            video_out = attend(query[:, :num_video], key[:, :num_video], value[:, :num_video], None)
            text_out = attend(query[:, num_video:], key, value, attention_mask)
            hidden_states = torch.cat([video_out, text_out], dim=1)

        hidden_states = hidden_states.flatten(2, 3).type_as(query)
        hidden_states = attn.to_out[0](hidden_states)
        return attn.to_out[1](hidden_states)


__all__ = ["JointAttentionInputs", "UniViGUAttnProcessor", "text_rotary_embedding"]
