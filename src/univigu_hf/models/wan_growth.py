"""Growing Uni-ViGU out of Wan2.1: which parameters are the text branch, and how a fresh text branch is initialised
from the Wan weights (`UniViGUModel.from_wan`)."""

import os

import torch
import torch.nn as nn
from diffusers import WanTransformer3DModel

from .configuration_univigu import UniViGUConfig


# Parameters a Wan checkpoint does not have: everything else keeps `WanTransformer3DModel`'s name.
TEXT_PARAMETER_PREFIXES = ("text_embedding.", "text_time_embedding.", "text_scale_shift_table", "text_norm_out.")
TEXT_PARAMETER_PREFIXES += ("text_proj_out.",)
_TEXT_FFN_INFIX = ".text_ffn."


def is_text_parameter(name: str) -> bool:
    """Whether a state-dict key belongs to the text branch added on top of Wan (the rest is Wan's video path)."""
    return name.startswith(TEXT_PARAMETER_PREFIXES) or _TEXT_FFN_INFIX in name


def initial_text_parameters(config: UniViGUConfig, wan_state_dict: dict) -> dict:
    """The text-branch tensors of a model grown from Wan (see `UniViGUModel.from_wan`)."""
    reference = wan_state_dict["proj_out.weight"]
    device, dtype = reference.device, reference.dtype
    dim, vocab = config.hidden_size, config.text_vocab_size
    text = {
        "text_embedding.weight": torch.randn(vocab, dim, device=device, dtype=torch.float32).to(dtype),
        "text_norm_out.weight": torch.ones(dim, device=device, dtype=torch.float32),
        "text_proj_out.weight": torch.zeros(vocab, dim, device=device, dtype=dtype),
        "text_proj_out.bias": torch.zeros(vocab, device=device, dtype=dtype),
        "text_scale_shift_table": wan_state_dict["scale_shift_table"].detach().clone(),
    }
    for name in ("time_embedder.linear_1", "time_embedder.linear_2", "time_proj"):
        for kind in ("weight", "bias"):
            text[f"text_time_embedding.{name}.{kind}"] = (
                wan_state_dict[f"condition_embedder.{name}.{kind}"].detach().clone()
            )
    for index in range(config.num_layers):
        text.update(_initial_text_ffn(wan_state_dict, f"blocks.{index}.", config.effective_text_ffn_dim))
    return text


def _initial_text_ffn(wan_state_dict: dict, prefix: str, text_ffn_dim: int) -> dict:
    w_in = wan_state_dict[f"{prefix}ffn.net.0.proj.weight"]
    b_in = wan_state_dict[f"{prefix}ffn.net.0.proj.bias"]
    w_out = wan_state_dict[f"{prefix}ffn.net.2.weight"]
    b_out = wan_state_dict[f"{prefix}ffn.net.2.bias"]
    ffn_dim = w_in.shape[0]
    if text_ffn_dim <= ffn_dim:
        if text_ffn_dim == ffn_dim:
            keep = torch.arange(ffn_dim, device=w_in.device)
        else:
            importance = w_in.float().norm(dim=1) * w_out.float().norm(dim=0)
            keep = importance.topk(text_ffn_dim).indices.sort().values
        w_in, b_in, w_out = w_in[keep], b_in[keep], w_out[:, keep]
    else:
        extra = text_ffn_dim - ffn_dim
        new_in = nn.Linear(w_in.shape[1], extra, device=w_in.device, dtype=torch.float32)
        w_in = torch.cat([w_in, new_in.weight.detach().to(w_in.dtype)])
        b_in = torch.cat([b_in, new_in.bias.detach().to(b_in.dtype)])
        w_out = torch.cat([w_out, w_out.new_zeros(w_out.shape[0], extra)], dim=1)
    return {
        f"{prefix}text_ffn.net.0.proj.weight": w_in.detach().clone().contiguous(),
        f"{prefix}text_ffn.net.0.proj.bias": b_in.detach().clone().contiguous(),
        f"{prefix}text_ffn.net.2.weight": w_out.detach().clone().contiguous(),
        f"{prefix}text_ffn.net.2.bias": b_out.detach().clone().contiguous(),
    }


def detect_wan_subfolder(path: str, loading_kwargs: dict) -> str | None:
    """The subfolder of a Wan checkpoint that holds the transformer: `"transformer"` for a pipeline, `None` for a
    transformer folder (a local folder is inspected, a repo id asked for `transformer/config.json`)."""
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "transformer", "config.json")):
            return "transformer"
        if os.path.isfile(os.path.join(path, "config.json")):
            return None
        raise ValueError(
            f"wan={path!r} is a folder without config.json or transformer/config.json; expected a diffusers Wan "
            "transformer folder or a Wan pipeline folder"
        )
    try:
        WanTransformer3DModel.load_config(path, subfolder="transformer", **loading_kwargs)
        return "transformer"
    except OSError:
        return None
