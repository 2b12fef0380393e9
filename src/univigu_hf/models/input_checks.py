"""The checks of `UniViGUModel.forward`'s arguments: every misuse is refused before any computation."""

import torch

from ..utils.checks import check_finite_input, check_timestep, describe_value
from .configuration_univigu import UniViGUConfig
from .video_cache import UniViGUVideoCache


def check_forward_inputs(
    config: UniViGUConfig,
    video_latents,
    text_ids,
    video_timestep,
    text_timestep,
    encoder_hidden_states,
    text_attention_mask,
    video_context=None,
    return_video_context: bool = False,
) -> int:
    """
    Checks the arguments of [`UniViGUModel.forward`] before any computation, naming the argument, what it accepts and
    what it got (data-dependent checks are skipped while compiling).

    Returns:
        `int`: the batch size.
    """
    if video_latents is None and text_ids is None:
        raise ValueError("UniViGUModel.forward needs video_latents, text_ids or both; got neither")
    batch_sizes = {}
    if video_latents is not None:
        if not isinstance(video_latents, torch.Tensor) or not video_latents.is_floating_point():
            raise TypeError(
                f"video_latents must be a floating-point torch.Tensor, got {describe_value(video_latents)}"
            )
        if video_latents.ndim != 5:
            raise ValueError(
                "video_latents must have shape (batch, channels, frames, height, width), got "
                f"{tuple(video_latents.shape)} (rank {video_latents.ndim})"
            )
        if video_latents.shape[1] != config.in_channels:
            raise ValueError(
                f"video_latents must have in_channels={config.in_channels} channels (dim 1), got shape "
                f"{tuple(video_latents.shape)}"
            )
        for axis, size, patch in zip(("frames", "height", "width"), video_latents.shape[2:], config.patch_size):
            if size % patch or size == 0:
                raise ValueError(
                    f"video_latents {axis} ({size}) must be a positive multiple of the patch size {patch} "
                    f"(patch_size={tuple(config.patch_size)}); got shape {tuple(video_latents.shape)}"
                )
            if size // patch > config.rope_max_seq_len:
                raise ValueError(
                    f"video_latents {axis} ({size}, {size // patch} patches) exceeds rope_max_seq_len="
                    f"{config.rope_max_seq_len} positions of the video RoPE; got shape {tuple(video_latents.shape)}"
                )
        check_finite_input("video_latents", video_latents)
        batch_sizes["video_latents"] = video_latents.shape[0]
        check_timestep("video_timestep", video_timestep, video_latents.shape[0])
    elif video_timestep is not None:
        raise ValueError("video_timestep was given without video_latents")
    if text_ids is not None:
        if not isinstance(text_ids, torch.Tensor) or text_ids.is_floating_point() or text_ids.is_complex():
            raise TypeError(f"text_ids must be an integer torch.Tensor of token ids, got {describe_value(text_ids)}")
        if text_ids.ndim != 2 or text_ids.shape[1] == 0:
            raise ValueError(
                f"text_ids must have shape (batch, text_length) with text_length >= 1, got {tuple(text_ids.shape)}"
            )
        if not torch.compiler.is_compiling():
            low, high = int(text_ids.min()), int(text_ids.max())
            if low < 0 or high >= config.text_vocab_size:
                bad = low if low < 0 else high
                raise ValueError(
                    f"text_ids must be token ids in [0, text_vocab_size={config.text_vocab_size}), found {bad}"
                )
        batch_sizes["text_ids"] = text_ids.shape[0]
        check_timestep("text_timestep", text_timestep, text_ids.shape[0])
        if text_attention_mask is not None:
            if not isinstance(text_attention_mask, torch.Tensor):
                raise TypeError(
                    f"text_attention_mask must be a torch.Tensor of 0/1 or bool, got {describe_value(text_attention_mask)}"
                )
            if tuple(text_attention_mask.shape) != tuple(text_ids.shape):
                raise ValueError(
                    f"text_attention_mask must have the shape of text_ids {tuple(text_ids.shape)}, got "
                    f"{tuple(text_attention_mask.shape)}"
                )
            if video_latents is None and video_context is None and not torch.compiler.is_compiling():
                if not bool(text_attention_mask.bool().any(dim=1).all()):
                    raise ValueError(
                        "text_attention_mask masks every text token of a sample and there are no video tokens: "
                        "each sample needs at least one token to attend to"
                    )
    else:
        if text_timestep is not None:
            raise ValueError("text_timestep was given without text_ids")
        if text_attention_mask is not None:
            raise ValueError("text_attention_mask was given without text_ids")
    if len(set(batch_sizes.values())) > 1:
        raise ValueError(f"video_latents and text_ids must have the same batch size, got {batch_sizes}")
    batch_size = next(iter(batch_sizes.values()))
    if encoder_hidden_states is not None:
        if not isinstance(encoder_hidden_states, torch.Tensor) or not encoder_hidden_states.is_floating_point():
            raise TypeError(
                f"encoder_hidden_states must be a floating-point torch.Tensor, got {describe_value(encoder_hidden_states)}"
            )
        if (
            encoder_hidden_states.ndim != 3
            or encoder_hidden_states.shape[0] != batch_size
            or encoder_hidden_states.shape[2] != config.text_dim
        ):
            raise ValueError(
                f"encoder_hidden_states must have shape (batch={batch_size}, sequence, text_dim={config.text_dim}), "
                f"got {tuple(encoder_hidden_states.shape)}"
            )
        check_finite_input("encoder_hidden_states", encoder_hidden_states)
    _check_video_context(config, video_context, return_video_context, video_latents, encoder_hidden_states, batch_size)
    return batch_size


def _check_video_context(
    config: UniViGUConfig, video_context, return_video_context, video_latents, encoder_hidden_states, batch_size
) -> None:
    if return_video_context and video_latents is None:
        raise ValueError("return_video_context=True needs video_latents (the context holds their keys/values)")
    if video_context is None:
        return
    if not isinstance(video_context, UniViGUVideoCache):
        raise TypeError(
            "video_context must be a UniViGUVideoContext (from return_video_context=True), got "
            f"{describe_value(video_context)}"
        )
    for name, value in (("video_latents", video_latents), ("encoder_hidden_states", encoder_hidden_states)):
        if value is not None:
            raise ValueError(
                f"{name} must be None with video_context: the context stands in for the video and holds the "
                "prompt condition it was computed with"
            )
    if not video_context.is_filled:
        raise ValueError(
            "video_context holds no video keys/values: pass the cache a forward filled (return_video_context=True)"
        )
    if video_context.num_layers != config.num_layers or video_context.batch_size != batch_size:
        raise ValueError(
            f"video_context holds {video_context.num_layers} layers for batch size {video_context.batch_size}; "
            f"this model has num_layers={config.num_layers} and text_ids has batch size {batch_size}"
        )
