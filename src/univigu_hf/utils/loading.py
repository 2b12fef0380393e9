"""Strict, safe loading: unreadable weights files are named, and weights that do not match the config are an error
rather than a partly random model."""

import os
import pickle

import torch


def find_unreadable_weights(folder: str | None) -> tuple[str, Exception] | None:
    """
    The first weights file under a local `folder` that cannot be read safely, with the error reading it raised:
    a safetensors file whose header does not parse or does not cover the file (truncated, corrupted), or a pickled
    `*model*.bin` that `torch.load(weights_only=True)` refuses. `None` if every file reads (or `folder` is not local).
    """
    if not folder or not os.path.isdir(folder):
        return None
    from safetensors import safe_open

    for root, subfolders, names in os.walk(folder):
        # Only model folders: not checkpoints, staging folders or other hidden folders a training run leaves.
        subfolders[:] = sorted(d for d in subfolders if not d.startswith((".", "checkpoint-", "tmp-checkpoint-")))
        for name in sorted(names):
            path = os.path.join(root, name)
            try:
                if name.endswith(".safetensors"):
                    with safe_open(path, framework="pt"):
                        pass
                elif name.endswith(".bin") and "model" in name:  # pytorch_model*.bin, diffusion_pytorch_model*.bin
                    torch.load(path, map_location="meta", weights_only=True, mmap=True)
            except Exception as error:  # noqa: BLE001 - any failure names the file
                return path, error
    return None


def unreadable_weights_error(source: str | None, error: BaseException) -> OSError:
    """
    The error raised for weights that cannot be read safely: a truncated or corrupted file, or a pickle that is not
    weights-only. Names the offending file when `source` is a local folder.
    """
    found = find_unreadable_weights(source)
    if found is not None:
        where, error = f"the weights file {found[0]!r}", found[1]
    else:
        where = f"the weights of {source!r}"
    if isinstance(error, pickle.UnpicklingError):
        return OSError(
            f"Refusing to load {where}: it is a pickle that is not weights-only, so unpickling it could run arbitrary "
            "code. Use safetensors weights (save_pretrained's default), or, in an environment you trust, re-save the "
            f"tensors alone with torch.save(state_dict, path). (torch: {str(error).strip().splitlines()[0]})"
        )
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return OSError(
        f"Cannot load {where}: it is truncated or corrupted ({detail}). Re-download it (from_pretrained(..., "
        "force_download=True)) or save the model again; a save interrupted half-way is what usually leaves such a "
        "file (univigu_hf saves are atomic, other tools' may not be)."
    )


def loading_problems(info: dict, ignore_mismatched_sizes: bool) -> list[str]:
    """What transformers' loading info reports as wrong (missing, unexpected, differently shaped tensors)."""

    def show(keys):
        keys = sorted(keys)
        return f"{keys[:4]}{' ...' if len(keys) > 4 else ''} ({len(keys)})"

    problems = []
    if info.get("missing_keys"):
        problems.append(f"tensors missing from the checkpoint {show(info['missing_keys'])}")
    if info.get("unexpected_keys"):
        problems.append(f"checkpoint tensors the config has no place for {show(info['unexpected_keys'])}")
    mismatched = info.get("mismatched_keys") or ()
    if mismatched and not ignore_mismatched_sizes:
        shown = [f"{key} checkpoint {tuple(ckpt)} vs config {tuple(model)}" for key, ckpt, model in sorted(mismatched)]
        problems.append(f"differently shaped tensors {shown[:4]}{' ...' if len(shown) > 4 else ''} ({len(shown)})")
    return problems


def config_summary(model) -> str:
    """The config fields that decide the weights' shapes, for error messages."""
    config = model.config
    fields = ("num_layers", "num_attention_heads", "attention_head_dim", "ffn_dim", "text_ffn_dim", "text_vocab_size")
    return ", ".join(f"{name}={getattr(config, name)}" for name in fields)


def check_state_dict_keys(what: str, expected: set[str], state_dict: dict) -> None:
    """Raises a `ValueError` naming `what` if `state_dict` has other keys than `expected`."""
    missing = sorted(expected - set(state_dict))
    unexpected = sorted(set(state_dict) - expected)
    if missing or unexpected:

        def show(keys):
            return f"{keys[:8]}{' ...' if len(keys) > 8 else ''} ({len(keys)})"

        raise ValueError(
            f"{what} does not match the UniViGU model: missing keys {show(missing)}, unexpected keys {show(unexpected)}"
        )
