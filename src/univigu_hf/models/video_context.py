"""`UniViGUVideoContext`: the video keys/values of a `UniViGUModel` forward, reused by text-only captioning steps."""

from dataclasses import dataclass, field

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
        cross_attention_outputs (`tuple[torch.Tensor, ...]`, *optional*):
            One `(batch, 1, hidden_size)` tensor per block when the prompt condition is a single token (captioning
            without a prompt): the cross-attention then has one key, so every token's output is its projected value
            and text-only steps add it instead of running the cross-attention.
    """

    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    encoder_hidden_states: torch.Tensor
    hidden_dtype: torch.dtype
    exact: bool
    cross_attention_outputs: tuple[torch.Tensor, ...] | None = None
    _buffers: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def reserve_text_rows(self, num_text_tokens: int) -> None:
        """
        Moves the cached keys/values into `(batch, video_tokens + num_text_tokens, heads, head_dim)` buffers, so that
        text-only steps of that many text tokens write their keys/values after the video rows instead of
        concatenating (a copy of the whole cache per block and step). `keys`/`values` become views of the buffers.

        Args:
            num_text_tokens (`int`): text tokens per step (positive).
        """
        if isinstance(num_text_tokens, bool) or not isinstance(num_text_tokens, int) or num_text_tokens < 1:
            raise ValueError(f"num_text_tokens must be a positive integer, got {num_text_tokens!r}")
        keys, values = [], []
        for index, (key, value) in enumerate(zip(self.keys, self.values)):
            buffers = []
            for cached in (key, value):
                batch, num_video, heads, head_dim = cached.shape
                # Head-major storage behind the (batch, tokens, heads, head_dim) view: the layout attention reads.
                buffer = cached.new_empty(batch, heads, num_video + num_text_tokens, head_dim).transpose(1, 2)
                buffer[:, :num_video] = cached
                buffers.append(buffer)
            self._buffers[index] = tuple(buffers)
            keys.append(buffers[0][:, :num_video])
            values.append(buffers[1][:, :num_video])
        self.keys, self.values = tuple(keys), tuple(values)

    def key_value_buffers(self, index: int, num_text_tokens: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """
        The buffers of block `index` from [`~UniViGUVideoContext.reserve_text_rows`] if they have room for exactly
        `num_text_tokens` text tokens, else `None` (the text keys/values are then concatenated).
        """
        buffers = self._buffers.get(index)
        if buffers is None or buffers[0].shape[1] != self.num_video_tokens + num_text_tokens:
            return None
        return buffers

    def cross_attention_output(self, index: int) -> torch.Tensor | None:
        """The cached cross-attention output of block `index` (one-token condition), else `None`."""
        return None if self.cross_attention_outputs is None else self.cross_attention_outputs[index]

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
        buffers = [buffer for pair in self._buffers.values() for buffer in pair]
        cached = buffers or [*self.keys, *self.values]
        tensors = (*cached, self.encoder_hidden_states, *(self.cross_attention_outputs or ()))
        return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


__all__ = ["UniViGUVideoContext"]
