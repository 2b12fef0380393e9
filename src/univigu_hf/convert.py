"""Conversion of the official Uni-ViGU checkpoints (`train_unified_wan.py` `.pth` files) to `UniViGUModel`, and back.

The official checkpoint is `{"model": state_dict, "optimizer": ..., "step": ...}` saved under FSDP. It is read with
`torch.load(weights_only=True)`: a file that needs arbitrary unpickling is refused.

Usage:
    python -m univigu_hf.convert --checkpoint step-00010000.pth --wan-config Wan2.1-T2V-1.3B-Diffusers \
        --output univigu-1.3b [--text-vocab-size 256300] [--dtype bfloat16]
"""

import argparse
import json
import os
import pickle
import re
import sys
from collections.abc import Mapping

import torch
from transformers.utils import logging

from .models import UniViGUConfig, UniViGUModel
from .utils.loading import check_state_dict_keys


logger = logging.get_logger(__name__)

# (official key pattern, our key template). Anchored regular expressions applied after prefix stripping.
KEY_MAP: tuple[tuple[str, str], ...] = (
    (r"vocab_embed\.weight", "text_embedding.weight"),
    (r"time_embedding_v\.(time_embedder|time_proj)\.(.+)", r"condition_embedder.\1.\2"),
    (r"time_embedding_t\.(time_embedder|time_proj)\.(.+)", r"text_time_embedding.\1.\2"),
    (r"cond_text_embedder\.(.+)", r"condition_embedder.text_embedder.\1"),
    (r"scale_shift_table_v", "scale_shift_table"),
    (r"scale_shift_table_t", "text_scale_shift_table"),
    (r"patch_embedding\.(weight|bias)", r"patch_embedding.\1"),
    (r"text_head\.norm_final\.weight", "text_norm_out.weight"),
    (r"text_head\.linear\.(weight|bias)", r"text_proj_out.\1"),
    (r"video_head\.proj_out\.(weight|bias)", r"proj_out.\1"),
    (r"blocks\.(\d+)\.ffn_t\.(.+)", r"blocks.\1.text_ffn.\2"),
    (r"blocks\.(\d+)\.(attn1|attn2|norm2|ffn)\.(.+)", r"blocks.\1.\2.\3"),
    (r"blocks\.(\d+)\.scale_shift_table", r"blocks.\1.scale_shift_table"),
)

# The inverse of KEY_MAP (tests check that the two compose to the identity on every key).
REVERSE_KEY_MAP: tuple[tuple[str, str], ...] = (
    (r"text_embedding\.weight", "vocab_embed.weight"),
    (r"condition_embedder\.(time_embedder|time_proj)\.(.+)", r"time_embedding_v.\1.\2"),
    (r"text_time_embedding\.(time_embedder|time_proj)\.(.+)", r"time_embedding_t.\1.\2"),
    (r"condition_embedder\.text_embedder\.(.+)", r"cond_text_embedder.\1"),
    (r"scale_shift_table", "scale_shift_table_v"),
    (r"text_scale_shift_table", "scale_shift_table_t"),
    (r"patch_embedding\.(weight|bias)", r"patch_embedding.\1"),
    (r"text_norm_out\.weight", "text_head.norm_final.weight"),
    (r"text_proj_out\.(weight|bias)", r"text_head.linear.\1"),
    (r"proj_out\.(weight|bias)", r"video_head.proj_out.\1"),
    (r"blocks\.(\d+)\.text_ffn\.(.+)", r"blocks.\1.ffn_t.\2"),
    (r"blocks\.(\d+)\.(attn1|attn2|norm2|ffn)\.(.+)", r"blocks.\1.\2.\3"),
    (r"blocks\.(\d+)\.scale_shift_table", r"blocks.\1.scale_shift_table"),
)

# Buffers of the official modules that our model recomputes instead of storing.
TEXT_ROPE_BUFFER = "rotary_emb_text.inv_freq"
_DROPPED_BUFFERS = re.compile(r"rotary_emb_video\.(freqs|freqs_cos|freqs_sin)")

# Wrapper prefixes added by FSDP, activation checkpointing, torch.compile and DDP.
_WRAPPER_INFIXES = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")


def strip_wrapper_prefixes(key: str) -> str:
    """Removes FSDP / activation-checkpointing / `torch.compile` / DDP wrapper names from a state-dict key."""
    for infix in _WRAPPER_INFIXES:
        key = key.replace(infix, "")
    while key.startswith("module."):
        key = key[len("module.") :]
    return key


def load_official_checkpoint(checkpoint: "str | os.PathLike | Mapping") -> dict[str, torch.Tensor]:
    """
    Reads an official checkpoint and returns its model state dict (wrapper prefixes stripped).

    Args:
        checkpoint (`str`, `os.PathLike` or `Mapping`):
            A `.pth`/`.pt` file (`{"model": state_dict, ...}` or a bare state dict), a `.safetensors` file, or the
            already-loaded dictionary.

    Returns:
        `dict[str, torch.Tensor]`: the model tensors under their official (unwrapped) names.

    Raises:
        `ValueError`: if the file is not weights-only (it would need arbitrary code to unpickle), has no model
            state dict, or two keys collide after unwrapping.
        `FileNotFoundError`: if the path does not exist.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        path = os.fspath(checkpoint)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"checkpoint file not found: {path!r}")
        if path.endswith(".safetensors"):
            from safetensors import SafetensorError
            from safetensors.torch import load_file

            try:
                checkpoint = load_file(path)
            except SafetensorError as error:
                raise ValueError(
                    f"checkpoint {path!r} is not a readable safetensors file: it is truncated or corrupted ({error}); "
                    "copy or download it again"
                ) from error
        else:
            try:
                checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except pickle.UnpicklingError as error:
                raise ValueError(
                    f"checkpoint {path!r} is not a weights-only file: unpickling it would run arbitrary code, so it is "
                    "refused. In an environment you trust, re-save just the tensors, e.g. "
                    "`torch.save(torch.load(path, weights_only=False)['model'], 'model.pth')`, and convert that. "
                    f"(torch said: {str(error).splitlines()[0]})"
                ) from error
            except RuntimeError as error:
                if "mmap" not in str(error):
                    raise ValueError(
                        f"checkpoint {path!r} could not be read as a torch file (truncated or corrupted? accepted: a "
                        f"torch.save .pth/.pt or a .safetensors file): {str(error).splitlines()[0]}"
                    ) from error
                checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f"checkpoint must be a path or a mapping of tensors, got {type(checkpoint).__name__}")
    state_dict = checkpoint.get("model", checkpoint)
    if not isinstance(state_dict, Mapping):
        raise ValueError(
            f"checkpoint['model'] must be a state dict (a mapping of tensors), got {type(state_dict).__name__}"
        )
    unwrapped: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(
                f"checkpoint model state dict entry {key!r} is a {type(value).__name__}, not a tensor; expected the "
                "official {'model': state_dict, ...} layout"
            )
        clean = strip_wrapper_prefixes(key)
        if clean in unwrapped:
            raise ValueError(f"checkpoint keys collide after removing wrapper prefixes: {key!r} -> {clean!r}")
        unwrapped[clean] = value
    return unwrapped


def map_official_key(key: str) -> str | None:
    """Our name for an official key, or `None` if it is not a known parameter."""
    for pattern, template in KEY_MAP:
        match = re.fullmatch(pattern, key)
        if match:
            return match.expand(template)
    return None


def _load_wan_config(wan_config) -> dict:
    if isinstance(wan_config, UniViGUConfig):
        return wan_config.to_wan_config()
    if isinstance(wan_config, Mapping):
        return dict(wan_config)
    if isinstance(wan_config, (str, os.PathLike)):
        path = os.fspath(wan_config)
        for candidate in (os.path.join(path, "transformer", "config.json"), os.path.join(path, "config.json"), path):
            if os.path.isfile(candidate):
                with open(candidate, encoding="utf-8") as handle:
                    return json.load(handle)
        from diffusers import WanTransformer3DModel

        try:  # A repo id: the Hub cache (or the Hub when online).
            return dict(WanTransformer3DModel.load_config(path, subfolder="transformer"))
        except OSError:
            try:
                return dict(WanTransformer3DModel.load_config(path))
            except OSError as error:
                raise ValueError(
                    f"wan_config={path!r} is neither a folder with config.json / transformer/config.json, a "
                    f"config.json file, nor a loadable Wan repo id ({error})"
                ) from error
    raise TypeError(
        "wan_config must be a dict, a UniViGUConfig, or the path/repo id of a diffusers Wan transformer config, got "
        f"{type(wan_config).__name__}"
    )


def convert_official_checkpoint(
    checkpoint: "str | os.PathLike | Mapping",
    wan_config: "str | os.PathLike | Mapping | UniViGUConfig",
    *,
    text_vocab_size: int | None = None,
    torch_dtype: torch.dtype | None = None,
    strict: bool = True,
    **config_overrides,
) -> UniViGUModel:
    r"""
    Converts an official Uni-ViGU checkpoint into a [`UniViGUModel`].

    Every key of the checkpoint is mapped to our names (the video path gets diffusers' `WanTransformer3DModel`
    names), checked against the model, or reported: unknown keys are an error with `strict=True` (a warning
    otherwise); missing keys are always an error, so no partially initialised model is ever returned.

    Args:
        checkpoint (`str`, `os.PathLike` or `Mapping`):
            The official `.pth` (read with `torch.load(weights_only=True)`), a `.safetensors` file, or a loaded dict.
        wan_config (`str`, `os.PathLike`, `Mapping` or [`UniViGUConfig`]):
            The diffusers config of the Wan transformer the checkpoint was trained from (a Wan pipeline or
            transformer folder, a `config.json`, a repo id or a dict).
        text_vocab_size (`int`, *optional*):
            The tokenizer's `vocab_size` the official code used. If the checkpoint's embedding has one more row,
            that row is the mask token (`mask_token_id = text_vocab_size`). `None`: taken from the checkpoint.
        torch_dtype (`torch.dtype`, *optional*):
            Cast floating tensors to this dtype (Wan's fp32 modules stay fp32). `None` keeps the checkpoint dtypes.
        strict (`bool`, defaults to `True`):
            Whether unknown checkpoint keys are an error.
        **config_overrides:
            Other [`UniViGUConfig`] fields (e.g. `max_text_length`, `pad_token_id`).

    Returns:
        [`UniViGUModel`]: the converted model, in eval mode.
    """
    official = load_official_checkpoint(checkpoint)
    wan_fields = _load_wan_config(wan_config)

    mapped: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in official.items():
        if key == TEXT_ROPE_BUFFER:
            head_dim = wan_fields.get("attention_head_dim", 128)
            theta = config_overrides.get("text_rope_theta", 10000.0)
            expected = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
            if value.shape != expected.shape or not torch.allclose(value.float(), expected, rtol=1e-5):
                raise ValueError(
                    f"checkpoint {TEXT_ROPE_BUFFER} does not match a rotate-half RoPE with base {theta} over "
                    f"head_dim={head_dim} (shape {tuple(value.shape)}); pass text_rope_theta=... if the base differs"
                )
            continue
        if _DROPPED_BUFFERS.fullmatch(key):
            continue
        ours = map_official_key(key)
        if ours is None:
            unknown.append(key)
        else:
            mapped[ours] = value
    if unknown:
        message = f"checkpoint has {len(unknown)} keys with no UniViGU counterpart: {sorted(unknown)[:10]}"
        if strict:
            raise ValueError(message + " (pass strict=False to drop them with a warning)")
        logger.warning(message + "; they were dropped")

    for required in ("text_embedding.weight", "text_proj_out.weight", "blocks.0.text_ffn.net.0.proj.weight"):
        if required not in mapped:
            raise ValueError(
                f"checkpoint has no tensor for {required!r}: this is not an official Uni-ViGU unified checkpoint"
            )
    rows, width = mapped["text_embedding.weight"].shape
    if mapped["text_proj_out.weight"].shape[0] != rows:
        raise ValueError(
            f"checkpoint vocab_embed has {rows} rows but text_head.linear has "
            f"{mapped['text_proj_out.weight'].shape[0]} outputs; they must agree"
        )
    if text_vocab_size is not None and rows not in (text_vocab_size, text_vocab_size + 1):
        raise ValueError(
            f"text_vocab_size={text_vocab_size} does not match the checkpoint's vocab_embed ({rows} rows); accepted: "
            f"{rows} (uniform source) or {rows - 1} (mask source, mask token = {rows - 1})"
        )
    if text_vocab_size is not None and rows == text_vocab_size + 1:
        config_overrides.setdefault("mask_token_id", text_vocab_size)
    text_ffn_dim = mapped["blocks.0.text_ffn.net.0.proj.weight"].shape[0]
    if text_ffn_dim == wan_fields.get("ffn_dim"):
        text_ffn_dim = None
    config = UniViGUConfig.from_wan_config(
        wan_fields, text_vocab_size=rows, text_ffn_dim=text_ffn_dim, **config_overrides
    )

    if width != config.hidden_size:
        raise ValueError(
            f"checkpoint vocab_embed is {width} wide but the Wan config describes a transformer of width "
            f"{config.hidden_size} ({config.num_attention_heads} heads x {config.attention_head_dim}); the checkpoint "
            "comes from another model size (width 1536: Wan2.1-1.3B, 5120: Wan2.1-14B): pass the Wan config of the "
            "model it was trained from"
        )
    # Every check before any tensor is cast or read: the checkpoint is memory-mapped, so a wrong file fails here
    # without the model ever being allocated.
    with torch.device("meta"):
        model = UniViGUModel(config)
    expected = model.state_dict()
    check_state_dict_keys("The checkpoint (after mapping to UniViGU names)", set(expected), mapped)
    wrong = [
        f"{k}: {tuple(v.shape)} (model: {tuple(expected[k].shape)})"
        for k, v in mapped.items()
        if v.shape != expected[k].shape
    ]
    if wrong:
        raise ValueError(
            f"{len(wrong)} checkpoint tensors do not have the shapes the Wan config gives: {wrong[:5]}; pass the Wan "
            "config of the model the checkpoint was trained from"
        )
    if torch_dtype is not None:
        mapped = {
            k: (v.to(torch.float32 if UniViGUModel.keeps_fp32(k) else torch_dtype) if v.is_floating_point() else v)
            for k, v in mapped.items()
        }
    model = UniViGUModel._from_full_state_dict(config, mapped, meta_model=model)
    logger.info("Converted %d official tensors into UniViGUModel (%s).", len(mapped), config.model_type)
    return model.eval()


def to_official_state_dict(model: UniViGUModel) -> dict[str, torch.Tensor]:
    """
    The reverse conversion: `model`'s weights under the official Uni-ViGU names (no wrapper prefixes), ready for
    `torch.save({"model": ...})` and the official inference script.

    Args:
        model ([`UniViGUModel`]): the model to export.

    Returns:
        `dict[str, torch.Tensor]`: the official state dict, including the text RoPE `inv_freq` buffer.
    """
    if not isinstance(model, UniViGUModel):
        raise TypeError(f"model must be a UniViGUModel, got {type(model).__name__}")
    official = {}
    for key, value in model.state_dict().items():
        for pattern, template in REVERSE_KEY_MAP:
            match = re.fullmatch(pattern, key)
            if match:
                official[match.expand(template)] = value
                break
        else:
            raise ValueError(f"UniViGUModel parameter {key!r} has no official name")
    head_dim, theta = model.config.attention_head_dim, model.config.text_rope_theta
    official[TEXT_ROPE_BUFFER] = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    return official


_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
_DTYPES.update({"float16": torch.float16, "fp16": torch.float16})


def main(argv: list[str] | None = None, prog: str = "python -m univigu_hf.convert") -> int:
    """Command line: convert an official checkpoint and save it with `save_pretrained` (safetensors)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Convert an official Uni-ViGU .pth checkpoint into a UniViGUModel folder (safetensors).",
    )
    parser.add_argument(
        "--checkpoint", required=True, help="official .pth ({'model': state_dict, ...}) or .safetensors"
    )
    parser.add_argument(
        "--wan-config", required=True, help="diffusers Wan2.1 pipeline/transformer folder, config.json or repo id"
    )
    parser.add_argument("--output", required=True, help="output folder for save_pretrained")
    parser.add_argument("--text-vocab-size", type=int, default=None, help="tokenizer vocab_size used in training")
    parser.add_argument("--dtype", choices=sorted(_DTYPES), default=None, help="cast weights (fp32 modules stay fp32)")
    parser.add_argument("--max-text-length", type=int, default=None, help="default caption length in the config")
    parser.add_argument("--no-strict", action="store_true", help="drop unknown checkpoint keys with a warning")
    parser.add_argument(
        "--max-shard-size",
        default=None,
        help="largest weights file, as save_pretrained takes it (e.g. 2GB; default: transformers' own)",
    )
    args = parser.parse_args(argv)
    for name in ("text_vocab_size", "max_text_length"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")

    overrides = {} if args.max_text_length is None else {"max_text_length": args.max_text_length}
    try:
        model = convert_official_checkpoint(
            args.checkpoint,
            args.wan_config,
            text_vocab_size=args.text_vocab_size,
            torch_dtype=_DTYPES[args.dtype] if args.dtype else None,
            strict=not args.no_strict,
            **overrides,
        )
        shards = {} if args.max_shard_size is None else {"max_shard_size": args.max_shard_size}
        model.save_pretrained(args.output, **shards)
    except (ValueError, TypeError, OSError) as error:  # the converter's own checks: no traceback
        print(f"{prog}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    num_parameters = sum(p.numel() for p in model.parameters())
    print(f"Saved UniViGUModel ({num_parameters:,} parameters) to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
