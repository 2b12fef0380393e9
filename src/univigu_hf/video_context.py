"""`UniViGUVideoContext`: the video keys/values of a `UniViGUModel` forward, reused by text-only captioning steps."""

from dataclasses import dataclass

import torch
from transformers.utils import logging


logger = logging.get_logger(__name__)


@dataclass
class UniViGUVideoContext:
    r"""
    What a caption step needs from the video: per block, the video keys and values of the joint self-attention
    (after Wan's query/key norm and 3-D RoPE), and the projected prompt condition of the cross-attention.

    `UniViGUModel(..., return_video_context=True)` returns one; `UniViGUModel(text_ids=..., video_context=context)`
    then runs only the text tokens, their queries attending to `[cached video keys; text keys]`. With
    `video_attends_text=False` the video tokens never see text, so their keys/values are the same at every caption
    step and the text-only forward equals the full one (`exact=True`). With joint attention (`video_attends_text=True`,
    the official default) the video keys/values depend on the caption they were computed with, and reusing them at
    later steps is an approximation (`exact=False`).

    Memory: `2 * num_layers * batch * video_tokens * hidden_size` elements in the model's dtype (Wan2.1-1.3B at
    480x832x81, 32,760 tokens, bf16: 6.0 GB; see docs/scaling.md).

    Args:
        keys (`tuple[torch.Tensor, ...]`):
            One `(batch, video_tokens, heads, head_dim)` tensor per block.
        values (`tuple[torch.Tensor, ...]`):
            One `(batch, video_tokens, heads, head_dim)` tensor per block.
        encoder_hidden_states (`torch.Tensor`):
            The projected prompt condition `(batch, sequence, hidden_size)` of the cross-attention.
        hidden_dtype (`torch.dtype`):
            dtype of the video hidden states (text hidden states are cast to it, as in the full forward).
        exact (`bool`):
            Whether text-only steps with this context equal full forwards (computed by a model with
            `video_attends_text=False`).
    """

    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    encoder_hidden_states: torch.Tensor
    hidden_dtype: torch.dtype
    exact: bool

    @property
    def batch_size(self) -> int:
        """`int`: samples in the batch."""
        return self.keys[0].shape[0]

    @property
    def num_video_tokens(self) -> int:
        """`int`: video tokens (patches) per sample."""
        return self.keys[0].shape[1]

    @property
    def num_layers(self) -> int:
        """`int`: blocks with cached keys/values."""
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        """`int`: memory held by the cached tensors, in bytes."""
        tensors = (*self.keys, *self.values, self.encoder_hidden_states)
        return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


__all__ = ["UniViGUVideoContext"]
