"""Wan LoRAs on `UniViGUPipeline`: diffusers' `WanLoraLoaderMixin` (its key conversions for the original Wan, ComfyUI,
kohya/musubi and lightx2v formats, `load_lora_weights`, `fuse_lora`, `set_adapters`, `unload_lora_weights`, ...), plus
the PEFT adapters our training script saves, and clear errors for files that are unreadable or match no module."""

import json
import os
import pickle
import re

import safetensors
import safetensors.torch
from diffusers.loaders import WanLoraLoaderMixin
from diffusers.utils import logging

from ...utils.loading import unreadable_weights_error


logger = logging.get_logger(__name__)


PEFT_CONFIG_NAME = "adapter_config.json"
PEFT_WEIGHTS_NAME = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."


def find_peft_adapter(path) -> str | None:
    """The folder of a PEFT adapter (`adapter_config.json` + `adapter_model.safetensors`) at `path` or at
    `path/adapter` (where `train_recall.py`/`train_refine.py --use_peft` keep it), else `None`."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.isdir(path):
        return None
    for folder in (os.fspath(path), os.path.join(path, "adapter")):
        if os.path.isfile(os.path.join(folder, PEFT_CONFIG_NAME)) and os.path.isfile(
            os.path.join(folder, PEFT_WEIGHTS_NAME)
        ):
            return folder
    return None


def load_peft_adapter(folder: str, prefix: str = "transformer") -> tuple[dict, dict]:
    """
    Reads a PEFT LoRA adapter folder as diffusers' LoRA format: the keys `base_model.model.<module>.lora_A.weight`
    become `<prefix>.<module>.lora_A.weight`, and `adapter_config.json` (rank, alpha, target modules, ...) becomes the
    LoRA metadata diffusers builds the `LoraConfig` from, so the adapter's scale (`lora_alpha / r`) is kept.
    """
    from peft import LoraConfig

    weights = os.path.join(folder, PEFT_WEIGHTS_NAME)
    try:
        state_dict = safetensors.torch.load_file(weights, device="cpu")
    except (OSError, safetensors.SafetensorError) as error:
        raise unreadable_weights_error(weights, error) from error
    with open(os.path.join(folder, PEFT_CONFIG_NAME), encoding="utf-8") as handle:
        peft_type = json.load(handle).get("peft_type")
    if peft_type != "LORA":
        raise ValueError(f"{folder!r} holds a {peft_type} adapter; load_lora_weights loads LoRA adapters only")
    config = LoraConfig.from_pretrained(folder)
    if config.modules_to_save:
        raise ValueError(
            f"The adapter {folder!r} also saves full modules ({config.modules_to_save}); diffusers' LoRA loader cannot "
            "load those. Load it with `pipe.transformer.load_adapter(folder)` (transformers/PEFT) instead."
        )
    converted = {}
    for key, value in state_dict.items():
        if not key.startswith(PEFT_PREFIX):
            raise ValueError(f"Unexpected key {key!r} in the PEFT adapter {weights!r} (expected {PEFT_PREFIX!r}...)")
        converted[f"{prefix}.{key.removeprefix(PEFT_PREFIX)}"] = value
    metadata = {f"{prefix}.{name}": value for name, value in config.to_dict().items()}
    return converted, metadata


def _local_safetensors(path, weight_name) -> list[str]:
    """The local safetensors files diffusers may read for `path` (a file, or a folder's top-level files)."""
    if not isinstance(path, (str, os.PathLike)):
        return []
    path = os.fspath(path)
    if os.path.isdir(path):
        names = [weight_name] if weight_name else sorted(os.listdir(path))
        files = [os.path.join(path, name) for name in names]
    else:
        files = [path]
    return [file for file in files if file.endswith(".safetensors") and os.path.isfile(file)]


def _raised_in_conversion(error: BaseException) -> bool:
    """Whether `error` comes from diffusers' LoRA key converters (not from finding or reading the file)."""
    traceback = error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename.endswith("lora_conversion_utils.py"):
            return True
        traceback = traceback.tb_next
    return False


def _refused_pickle(error: OSError, path) -> OSError | None:
    """
    For diffusers' bare `Unable to load weights from checkpoint file for '<file>'` (its `torch.load(weights_only=True)`
    of a `.ckpt` / `.pt` / `.bin` failed, reason dropped): the error naming the file and, for a pickle that is not
    weights-only, the way to load it anyway; `None` when the file is not a refused pickle.
    """
    found = re.search(r"checkpoint file for '(.+?)' at", str(error))
    file = found.group(1) if found else (os.fspath(path) if isinstance(path, (str, os.PathLike)) else None)
    if not file or not os.path.isfile(file) or file.endswith(".safetensors"):
        return None
    try:
        import torch

        torch.load(file, map_location="meta", weights_only=True)
    except pickle.UnpicklingError as reason:
        refused = unreadable_weights_error(file, reason)
        return OSError(
            f"{refused} load_lora_weights reads pickled LoRA files (.ckpt, .pt, .bin) weights-only. If you trust "
            f"{file!r}, opt in by unpickling it yourself and passing the state dict: "
            "`pipe.load_lora_weights(torch.load(path, weights_only=False))`."
        )
    except Exception:  # noqa: BLE001 - not a pickle problem: diffusers' error stands
        return None
    return None


def _unapplied_diff_keys(keys) -> list[str]:
    """The full-weight `.diff` keys of a lightx2v-style file that diffusers' Wan conversion leaves out: all but the
    norm layers' (zeros in the published files) and the output head's (converted)."""
    return sorted(
        key
        for key in keys
        if key.endswith(".diff") and "norm" not in key and not key.removeprefix("diffusion_model.").startswith("head.")
    )


def _sample(keys, count: int = 3) -> str:
    return f" Its keys include {keys[:count]}." if keys else ""


class UniViGULoraLoaderMixin(WanLoraLoaderMixin):
    """
    diffusers' [`~loaders.WanLoraLoaderMixin`] for [`UniViGUPipeline`]: `pipe.load_lora_weights(...)` takes the LoRA
    files `WanPipeline` takes (diffusers, original Wan, ComfyUI, kohya/musubi, lightx2v formats) and loads them into
    the video path of `pipe.transformer`, whose modules keep Wan's names. It also takes a PEFT adapter folder (as
    saved by `train_recall.py` / `train_refine.py --use_peft`, or its training output folder). The text stream's own
    modules are only touched by a file that has keys for them.
    """

    _lora_loadable_modules = ["transformer"]

    @classmethod
    def lora_state_dict(cls, pretrained_model_name_or_path_or_dict, **kwargs):
        """
        diffusers' [`~loaders.WanLoraLoaderMixin.lora_state_dict`] (converting the non-diffusers Wan formats), plus a
        PEFT adapter folder (`adapter_config.json` + `adapter_model.safetensors`, or the training output folder that
        holds one in `adapter/`), and an error naming the file when a local safetensors file is unreadable.
        """
        folder = None if kwargs.get("weight_name") else find_peft_adapter(pretrained_model_name_or_path_or_dict)
        if folder is not None:
            state_dict, metadata = load_peft_adapter(folder, prefix=cls.transformer_name)
            return (state_dict, metadata) if kwargs.get("return_lora_metadata") else state_dict
        local_files = _local_safetensors(pretrained_model_name_or_path_or_dict, kwargs.get("weight_name"))
        file_keys = []
        for local_file in local_files:
            # diffusers would fall back to looking for a pickled `.bin` and report that missing instead.
            try:
                with safetensors.safe_open(local_file, framework="pt") as handle:
                    file_keys.extend(handle.keys())
            except (OSError, safetensors.SafetensorError) as error:
                raise unreadable_weights_error(local_file, error) from error
        source = "the LoRA state dict" if isinstance(pretrained_model_name_or_path_or_dict, dict) else None
        source = source or repr(
            local_files[0] if len(local_files) == 1 else os.fspath(pretrained_model_name_or_path_or_dict)
        )
        keys = list(pretrained_model_name_or_path_or_dict) if source == "the LoRA state dict" else None
        unapplied = _unapplied_diff_keys(keys if keys is not None else file_keys)
        try:
            out = super().lora_state_dict(pretrained_model_name_or_path_or_dict, **kwargs)
        except OSError as error:
            # diffusers drops why `torch.load(weights_only=True)` refused a pickled file.
            refused = _refused_pickle(error, pretrained_model_name_or_path_or_dict)
            if refused is None:
                raise
            raise refused from error
        except (KeyError, IndexError, ValueError) as error:
            # diffusers' converters fail with a bare KeyError/min() error on keys they do not know (a Flux LoRA).
            if not _raised_in_conversion(error):
                raise
            raise ValueError(
                f"Cannot read {source} as a Wan LoRA: diffusers' Wan key conversion failed ({type(error).__name__}: "
                f"{error}).{_sample(keys)} Is it a LoRA for another model?"
            ) from error
        state_dict = out[0] if kwargs.get("return_lora_metadata") else out
        prefix = f"{cls.transformer_name}."
        if state_dict and not any(key.startswith(prefix) for key in state_dict):
            # diffusers would only log that nothing was loaded; a LoRA that changes nothing is an error here.
            hint = ""
            if any(key.startswith(PEFT_PREFIX) for key in state_dict):
                hint = f" It is a PEFT adapter file: pass its folder (with {PEFT_CONFIG_NAME}) instead."
            raise ValueError(
                f"No key of {source} is a LoRA key of the Wan transformer (`{prefix}...` after diffusers' conversion "
                f"of the Wan formats).{_sample(list(state_dict))}{hint} Is it a LoRA for another model?"
            )
        if unapplied:
            # diffusers only logs this at info level; the LoRA then acts without part of its weights.
            logger.warning(
                f"{len(unapplied)} full-weight `.diff` key(s) of {source} are not applied: diffusers' Wan LoRA "
                f"conversion has no place for them (WanPipeline leaves them out too), so the LoRA acts without these "
                f"weight changes.{_sample(unapplied)} To apply one, add it to the weight it names yourself."
            )
        return out

    @classmethod
    def save_lora_weights(
        cls, save_directory, transformer_lora_layers=None, transformer_lora_adapter_metadata=None, **kwargs
    ):
        """
        diffusers' [`~loaders.WanLoraLoaderMixin.save_lora_weights`]: writes `pytorch_lora_weights.safetensors` with
        `transformer.`-prefixed keys, which `WanPipeline.load_lora_weights` loads (the keys of the video path are
        Wan's). The saved metadata has `lora_dropout=0`: the file is for inference, and diffusers' loader creates the
        dropout layers in training mode.
        """
        if transformer_lora_adapter_metadata:
            transformer_lora_adapter_metadata = dict(transformer_lora_adapter_metadata, lora_dropout=0.0)
        super().save_lora_weights(
            save_directory,
            transformer_lora_layers=transformer_lora_layers,
            transformer_lora_adapter_metadata=transformer_lora_adapter_metadata,
            **kwargs,
        )

    @classmethod
    def _maybe_expand_t2v_lora_for_i2v(cls, transformer, state_dict):
        # UniViGU grows from text-to-video Wan only (no image cross-attention to expand the LoRA to).
        return state_dict


__all__ = ["UniViGULoraLoaderMixin", "find_peft_adapter", "load_peft_adapter"]
