"""Small torch/diffusers helpers used when loading components."""

import torch
import torch.nn as nn


def diffusers_dtype_kwargs(dtype: torch.dtype | None) -> dict:
    """The dtype argument of diffusers' `from_pretrained`: `dtype` where supported (0.42+), else `torch_dtype`."""
    if dtype is None:
        return {}
    from diffusers.utils import deprecation_utils

    return {"dtype" if hasattr(deprecation_utils, "_TORCH_DTYPE_DEPRECATION_MESSAGE") else "torch_dtype": dtype}


def realign_cpu_tensors(module: nn.Module) -> nn.Module:
    """
    Copies CPU parameters/buffers whose memory is not 64-byte aligned (safetensors mmaps tensors at arbitrary
    offsets). Unaligned inputs make CPU kernels take another vectorisation path and drift by ~1e-7, so without this
    a save/load round trip would not reproduce outputs bit for bit.
    """
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.device.type == "cpu" and tensor.numel() and tensor.data_ptr() % 64:
            tensor.data = tensor.data.clone()
    return module


def as_float_tensor(value: float | torch.Tensor) -> torch.Tensor:
    """Turns a python number into a float32 tensor and leaves floating tensors as they are (ints go to float32)."""
    if isinstance(value, torch.Tensor):
        return value if torch.is_floating_point(value) else value.to(torch.float32)
    return torch.tensor(value, dtype=torch.float32)


def random_device(generator: torch.Generator | None, device: str | torch.device | None) -> torch.device:
    """Device to draw random numbers on: the generator's (it must match), else `device`, else the CPU."""
    if generator is not None:
        return generator.device
    return torch.device(device) if device is not None else torch.device("cpu")


def check_generator(generator, batch: int | None) -> None:
    """Checks `generator` (one `torch.Generator`, or a list with one per sample) without drawing from it."""
    if isinstance(generator, torch.Generator):
        return
    if isinstance(generator, (list, tuple)) and all(isinstance(g, torch.Generator) for g in generator):
        if batch is not None and len(generator) != batch:
            raise ValueError(
                f"generator list has {len(generator)} generators but the batch has {batch} samples; accepted: one "
                f"torch.Generator, or a list of {batch} (one per sample)"
            )
        return
    given = generator[0] if isinstance(generator, (list, tuple)) and generator else generator
    kind = type(given)
    what = f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__name__
    raise TypeError(
        "generator must be a torch.Generator or a list of them (one per sample), got "
        + (f"a list holding {what}" if given is not generator else what)
    )


def per_sample_generators(generator, batch: int) -> list[torch.Generator] | None:
    """One generator per sample: a list as given, or a single generator split into per-sample streams."""
    if generator is None:
        return None
    check_generator(generator, batch)
    if isinstance(generator, torch.Generator):
        if batch == 1:
            return [generator]
        # One generator for the batch: split deterministically into per-sample streams.
        seeds = torch.randint(0, 2**62, (batch,), generator=generator, device=generator.device).tolist()
        return [torch.Generator(generator.device).manual_seed(seed) for seed in seeds]
    return list(generator)
