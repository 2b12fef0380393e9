"""Argument checks shared by the model, the scheduler, the pipeline and the training code."""

import math

import numpy as np
import torch


def all_finite(tensor: torch.Tensor) -> bool:
    """
    Whether every element of `tensor` is finite.

    One reduction in the common case: a finite sum means finite elements, and only a non-finite sum (a NaN or inf
    element, or a float overflow of the sum) falls back to the element-wise check, which makes the per-step check of
    a caption's logits much cheaper than `torch.isfinite(tensor).all()`.

    Args:
        tensor (`torch.Tensor`): any tensor (integer and bool tensors are always finite).

    Returns:
        `bool`: whether no element is NaN or +/-inf.
    """
    if not (tensor.is_floating_point() or tensor.is_complex()) or tensor.numel() == 0:
        return True
    if bool(torch.isfinite(tensor.sum())):
        return True
    return bool(torch.isfinite(tensor).all())


def is_int(value) -> bool:
    """Whether `value` is an integer (Python or NumPy), booleans excluded."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_real(value) -> bool:
    """Whether `value` is a real number (Python or NumPy int/float), booleans excluded."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def describe_value(value) -> str:
    """A short description of an argument for error messages: dtype and shape of a tensor, else type and repr."""
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"{type(value).__name__} {value!r}"[:120]


def check_finite_input(name: str, tensor: torch.Tensor) -> None:
    """
    Raises a `ValueError` naming the argument `name` if the input `tensor` holds NaN or inf (skipped while compiling:
    the check would break the graph).
    """
    if torch.compiler.is_compiling() or all_finite(tensor):
        return
    bad = int((~torch.isfinite(tensor)).sum())
    raise ValueError(
        f"{name} contains {bad} NaN or inf values (of {tensor.numel()}); accepted: finite values. Check what produced "
        "them (float16 overflow, a diverged model, corrupted data)."
    )


def check_positive_int(name: str, value) -> None:
    """Raises a `ValueError` naming `name` unless `value` is an integer >= 1."""
    if not is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_timestep(name: str, timestep, batch_size: int) -> None:
    """Checks a model timestep argument: a finite number, or a tensor of shape `(batch_size,)` or a scalar."""
    if timestep is None:
        modality = "video_latents" if name == "video_timestep" else "text_ids"
        raise ValueError(f"{name} is required with {modality} (a tensor of shape (batch,) on the 0..1000 scale)")
    if isinstance(timestep, (int, float)) and not isinstance(timestep, bool):
        if not math.isfinite(timestep):
            raise ValueError(f"{name} must be a finite number on the 0..1000 scale, got {timestep!r}")
        return
    if not isinstance(timestep, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (batch,) or a number, got {describe_value(timestep)}")
    if timestep.is_floating_point():
        check_finite_input(name, timestep)
    if timestep.numel() not in (1, batch_size) or timestep.ndim > 1:
        raise ValueError(
            f"{name} must have shape ({batch_size},) (one timestep per sample) or be a scalar, got "
            f"{tuple(timestep.shape)}"
        )
