"""`UniViGUVideoCache`: what text-only caption steps reuse of the video, filled by the `UniViGUModel` forward that
computes it. One object with one layer per block, updated inside the attention, as transformers' `Cache`."""

import torch


class UniViGUVideoCacheLayer:
    """
    One block's part of a [`UniViGUVideoCache`]: the video keys and values of its joint self-attention (after Wan's
    query/key norm and 3-D RoPE) and, when the prompt condition is a single token, its cross-attention output.

    A step with video tokens stores them; a text-only step reads them (the rule of transformers'
    `DynamicLayer.update`, where the cached rows are the video tokens). Reading reuses tensors only without autograd
    where the result allows it; with autograd on, text keys/values are concatenated and the cross-attention runs.

    Attributes:
        keys, values (`torch.Tensor` of shape `(batch, video_tokens, heads, head_dim)`): the cached video rows.
        cross_attention_output (`torch.Tensor` of shape `(batch, 1, hidden_size)`, *optional*): the cross-attention
            output of every token for a one-token condition (one key: the output does not depend on the query).
        buffers (`tuple[torch.Tensor, torch.Tensor]`, *optional*): `(batch, video_tokens + text_tokens, heads,
            head_dim)` buffers whose video rows are `keys`/`values`; text-only steps of that many text tokens write
            their keys/values into the last rows instead of concatenating (a copy of the whole cache per step).
    """

    def __init__(self):
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None
        self.cross_attention_output: torch.Tensor | None = None
        self.buffers: tuple[torch.Tensor, torch.Tensor] | None = None

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, num_video_tokens: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        The keys and values this step's queries attend to, rows `[video; text]`.

        Args:
            key_states, value_states (`torch.Tensor` of shape `(batch, tokens, heads, head_dim)`): this step's keys
                and values, its `num_video_tokens` video rows first.
            num_video_tokens (`int`): video rows of this step; `0` for a text-only step.

        Returns:
            `tuple[torch.Tensor, torch.Tensor]`: with video rows, `key_states`/`value_states` themselves (their video
            rows are stored, with room for as many text rows when autograd is off); without, the stored video rows
            followed by this step's.
        """
        if num_video_tokens:
            self.keys, self.values = key_states[:, :num_video_tokens], value_states[:, :num_video_tokens]
            self.buffers = None
            num_text_tokens = key_states.shape[1] - num_video_tokens
            if num_text_tokens and not torch.is_grad_enabled():
                self.reserve_text_rows(num_text_tokens)
            return key_states, value_states
        buffers = None if torch.is_grad_enabled() else self.key_value_buffers(key_states.shape[1])
        if buffers is None:
            return torch.cat([self.keys, key_states], dim=1), torch.cat([self.values, value_states], dim=1)
        buffers[0][:, self.keys.shape[1] :] = key_states
        buffers[1][:, self.keys.shape[1] :] = value_states
        return buffers

    def reused_cross_attention_output(self, num_video_tokens: int) -> torch.Tensor | None:
        """The stored cross-attention output for a text-only step without autograd (one-token condition), else
        `None`: the cross-attention runs."""
        if num_video_tokens or torch.is_grad_enabled():
            return None
        return self.cross_attention_output

    def update_cross_attention(self, output: torch.Tensor, num_video_tokens: int, num_condition_tokens: int) -> None:
        """Stores the cross-attention `output` `(batch, tokens, hidden_size)` of a step with video tokens when the
        condition is one token (then every row is the same)."""
        if num_video_tokens and num_condition_tokens == 1:
            self.cross_attention_output = output[:, :1]

    def reserve_text_rows(self, num_text_tokens: int) -> None:
        """Moves `keys`/`values` into `buffers` with `num_text_tokens` more rows (see [`UniViGUVideoCache`])."""
        buffers = []
        for cached in (self.keys, self.values):
            batch, num_video, heads, head_dim = cached.shape
            # Head-major storage behind the (batch, tokens, heads, head_dim) view: the layout attention reads.
            buffer = cached.new_empty(batch, heads, num_video + num_text_tokens, head_dim).transpose(1, 2)
            buffer[:, :num_video] = cached
            buffers.append(buffer)
        self.buffers = (buffers[0], buffers[1])
        self.keys, self.values = buffers[0][:, :num_video], buffers[1][:, :num_video]

    def key_value_buffers(self, num_tokens: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """`buffers` if they have room for exactly `num_tokens` text tokens, else `None`."""
        if self.buffers is None or self.buffers[0].shape[1] != self.keys.shape[1] + num_tokens:
            return None
        return self.buffers

    def tensors(self) -> list[torch.Tensor]:
        """The tensors this layer holds (the buffers rather than their views)."""
        held = list(self.buffers) if self.buffers is not None else [self.keys, self.values]
        if self.cross_attention_output is not None:
            held.append(self.cross_attention_output)
        return [tensor for tensor in held if tensor is not None]


class UniViGUVideoCache:
    r"""
    What a caption step needs from the video: per block, the video keys and values of the joint self-attention and,
    for a one-token condition, the cross-attention output ([`UniViGUVideoCacheLayer`]); and the projected prompt
    condition of the cross-attention.

    `UniViGUModel(..., return_video_context=True)` creates one and fills it during the forward; with
    `UniViGUModel(text_ids=..., video_context=cache)` only the text tokens run, their queries attending to
    `[cached video keys; text keys]`. The blocks and their attention read and write the cache through its layers:
    a step with video tokens stores them, a text-only step reads them. With `video_attends_text=False` the video tokens
    never see text, so their keys/values are the same at every caption step and the text-only forward equals the full
    one (`exact=True`). With joint attention (`video_attends_text=True`, the official default) the video keys/values
    depend on the caption they were computed with, and reusing them at later steps is an approximation
    (`exact=False`).

    A cache filled by a step with text (without autograd) keeps each layer's keys/values in buffers with room for that
    many text tokens: later text-only steps write their keys/values after the video rows instead of concatenating.

    Memory: `2 * num_layers * batch * video_tokens * hidden_size` elements in the model's dtype (Wan2.1-1.3B at
    480x832x81, 32,760 tokens, bf16: 6.0 GB; see docs/scaling.md).

    Args:
        num_layers (`int`): blocks of the model.
        exact (`bool`): whether text-only steps with this cache equal full forwards (a model with
            `video_attends_text=False`).

    Attributes:
        layers (`list[UniViGUVideoCacheLayer]`): one per block.
        prompt_hidden_states (`torch.Tensor` of shape `(batch, sequence, hidden_size)`): the projected prompt
            condition of the cross-attention.
        hidden_dtype (`torch.dtype`): dtype of the video hidden states (text hidden states are cast to it, as in the
            full forward).
    """

    def __init__(self, num_layers: int, exact: bool):
        self.layers = [UniViGUVideoCacheLayer() for _ in range(num_layers)]
        self.exact = exact
        self.prompt_hidden_states: torch.Tensor | None = None
        self.hidden_dtype: torch.dtype | None = None

    def __repr__(self) -> str:
        if not self.is_filled:
            return f"{type(self).__name__}(num_layers={self.num_layers}, exact={self.exact}, empty)"
        return (
            f"{type(self).__name__}(num_layers={self.num_layers}, exact={self.exact}, batch_size={self.batch_size}, "
            f"num_video_tokens={self.num_video_tokens}, nbytes={self.nbytes})"
        )

    def update_prompt(self, prompt_hidden_states: torch.Tensor, hidden_dtype: torch.dtype) -> None:
        """Stores the projected prompt condition and the video dtype of the step that fills the cache."""
        self.prompt_hidden_states, self.hidden_dtype = prompt_hidden_states, hidden_dtype

    def reserve_text_rows(self, num_text_tokens: int) -> None:
        """
        Moves the cached keys/values into `(batch, video_tokens + num_text_tokens, heads, head_dim)` buffers, so that
        text-only steps of that many text tokens write their keys/values after the video rows instead of
        concatenating. `keys`/`values` become views of the buffers.

        Args:
            num_text_tokens (`int`): text tokens per step (positive).
        """
        if isinstance(num_text_tokens, bool) or not isinstance(num_text_tokens, int) or num_text_tokens < 1:
            raise ValueError(f"num_text_tokens must be a positive integer, got {num_text_tokens!r}")
        for layer in self.layers:
            layer.reserve_text_rows(num_text_tokens)

    def key_value_buffers(self, index: int, num_text_tokens: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The buffers of block `index` if they have room for exactly `num_text_tokens` text tokens, else `None` (the
        text keys/values are then concatenated)."""
        return self.layers[index].key_value_buffers(num_text_tokens)

    def cross_attention_output(self, index: int) -> torch.Tensor | None:
        """The cached cross-attention output of block `index` (one-token condition), else `None`."""
        return self.layers[index].cross_attention_output

    @property
    def keys(self) -> tuple[torch.Tensor, ...]:
        """`tuple[torch.Tensor, ...]`: the cached video keys `(batch, video_tokens, heads, head_dim)` of each block."""
        return tuple(layer.keys for layer in self.layers)

    @property
    def values(self) -> tuple[torch.Tensor, ...]:
        """`tuple[torch.Tensor, ...]`: the cached video values of each block."""
        return tuple(layer.values for layer in self.layers)

    @property
    def cross_attention_outputs(self) -> tuple[torch.Tensor, ...] | None:
        """`tuple[torch.Tensor, ...]` or `None`: the cross-attention output `(batch, 1, hidden_size)` of each block
        when the condition is one token (captioning without a prompt), else `None`."""
        outputs = tuple(layer.cross_attention_output for layer in self.layers)
        return None if any(output is None for output in outputs) else outputs

    @property
    def encoder_hidden_states(self) -> torch.Tensor | None:
        """`torch.Tensor`: `prompt_hidden_states`, by the name of the model argument it was projected from."""
        return self.prompt_hidden_states

    @property
    def batch_size(self) -> int:
        """`int`: samples in the batch."""
        return self.layers[0].keys.shape[0]

    @property
    def num_video_tokens(self) -> int:
        """`int`: video tokens (patches) per sample."""
        return self.layers[0].keys.shape[1]

    @property
    def num_layers(self) -> int:
        """`int`: blocks with cached keys/values."""
        return len(self.layers)

    @property
    def is_filled(self) -> bool:
        """`bool`: whether a forward has stored video keys/values in every layer."""
        return bool(self.layers) and all(layer.keys is not None for layer in self.layers)

    @property
    def nbytes(self) -> int:
        """`int`: memory held by the cached tensors, in bytes."""
        tensors = [tensor for layer in self.layers for tensor in layer.tensors()]
        if self.prompt_hidden_states is not None:
            tensors.append(self.prompt_hidden_states)
        return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


# The name the model's `video_context=` / `return_video_context=` arguments use.
UniViGUVideoContext = UniViGUVideoCache


__all__ = ["UniViGUVideoCache", "UniViGUVideoCacheLayer", "UniViGUVideoContext"]
