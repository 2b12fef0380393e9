"""What a model card says about a checkpoint: its kind, classes, configs and parameter counts, read from a UniViGU
pipeline, model or PEFT adapter, or from a folder holding one, without loading weights."""

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


# `UniViGUConfig.model_type` (a test keeps them equal): the hub tells a UniViGU model by its config, without importing
# the models package (which imports the hub for `push_to_hub`).
UNIVIGU_MODEL_TYPE = "univigu"


@dataclass
class Checkpoint:
    """What a card says about the checkpoint, read from an object or a folder without loading weights."""

    kind: str
    pipeline_class: str | None = None
    components: dict[str, str] = field(default_factory=dict)  # name -> class
    pipeline_config: dict[str, Any] = field(default_factory=dict)  # default_height, ... (model_index.json)
    transformer_config: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, int] = field(default_factory=dict)  # component (or "adapter") -> count
    adapter_config: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = None
    text_head_is_zero: bool = False  # the text output head of a model fresh from `from_wan` (never trained)


def _saved_text_head_is_zero(folder: Path, rows: int = 64) -> bool:
    """Whether the saved text head starts with all-zero rows (reads only those rows, not the whole head)."""
    from safetensors import safe_open

    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(path, framework="pt") as handle:
            if "text_proj_out.weight" in handle.keys():
                return not handle.get_slice("text_proj_out.weight")[:rows].any()
    return False


def _folder_parameter_count(folder: Path) -> int:
    """The parameters in a folder's safetensors files, counted from their headers (no tensor is read)."""
    from safetensors import safe_open

    total = 0
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(path, framework="pt") as handle:
            total += sum(math.prod(handle.get_slice(key).get_shape()) for key in handle.keys())
    return total


# diffusers' LoRA file (`save_lora_weights`, its training scripts), and the key of its LoRA metadata in the header
DIFFUSERS_LORA_NAME = "pytorch_lora_weights.safetensors"
LORA_METADATA_KEY = "lora_adapter_metadata"


def diffusers_lora_config(path: Path, prefix: str = "transformer") -> dict:
    """The LoRA config diffusers' `save_lora_weights` keeps in the file's header (`{prefix}.r`, ...), without the
    prefix; `{}` when the file has none."""
    from safetensors import safe_open

    with safe_open(path, framework="pt") as handle:
        raw = (handle.metadata() or {}).get(LORA_METADATA_KEY)
    if not raw:
        return {}
    metadata = json.loads(raw)
    return {key.removeprefix(f"{prefix}."): value for key, value in metadata.items() if key.startswith(f"{prefix}.")}


def read_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _folder_kind(folder: Path) -> str:
    if (folder / "model_index.json").is_file():
        return "pipeline"
    if (folder / "adapter_config.json").is_file():
        return "adapter"
    if (folder / DIFFUSERS_LORA_NAME).is_file():
        return "lora"
    if (folder / "config.json").is_file():
        model_type = read_json(folder / "config.json").get("model_type")
        if model_type == "univigu":
            return "model"
        raise ValueError(
            f"{os.fspath(folder)!r} holds a config.json of model_type {model_type!r}; expected a UniViGU model "
            "('univigu'), a pipeline folder (model_index.json) or a PEFT adapter folder (adapter_config.json)"
        )
    raise ValueError(
        f"{os.fspath(folder)!r} is not a checkpoint folder: expected a pipeline (model_index.json), a UniViGU model "
        f"(config.json), a PEFT adapter (adapter_config.json) or a diffusers LoRA ({DIFFUSERS_LORA_NAME})"
    )


def describe_folder(folder: Path) -> Checkpoint:
    kind = _folder_kind(folder)
    checkpoint = Checkpoint(kind=kind, folder=folder)
    if kind == "pipeline":
        index = read_json(folder / "model_index.json")
        checkpoint.pipeline_class = index.get("_class_name")
        for name, value in index.items():
            if isinstance(value, list) and len(value) == 2 and value[1] is not None:
                checkpoint.components[name] = value[1]
                if (folder / name).is_dir():
                    count = _folder_parameter_count(folder / name)
                    if count:
                        checkpoint.parameters[name] = count
            elif not name.startswith("_"):
                checkpoint.pipeline_config[name] = value
        if (folder / "transformer" / "config.json").is_file():
            checkpoint.transformer_config = read_json(folder / "transformer" / "config.json")
            checkpoint.text_head_is_zero = _saved_text_head_is_zero(folder / "transformer")
    elif kind == "model":
        checkpoint.transformer_config = read_json(folder / "config.json")
        checkpoint.parameters["transformer"] = _folder_parameter_count(folder)
        checkpoint.text_head_is_zero = _saved_text_head_is_zero(folder)
    elif kind == "lora":
        checkpoint.adapter_config = diffusers_lora_config(folder / DIFFUSERS_LORA_NAME)
        checkpoint.parameters["adapter"] = _folder_parameter_count(folder)
    else:
        checkpoint.adapter_config = read_json(folder / "adapter_config.json")
        checkpoint.parameters["adapter"] = _folder_parameter_count(folder)
    return checkpoint


def is_univigu_model(obj) -> bool:
    """Whether `obj` is a UniViGU transformer (a transformers model whose config has the UniViGU model type)."""
    return getattr(getattr(obj, "config", None), "model_type", None) == UNIVIGU_MODEL_TYPE and hasattr(
        obj, "parameters"
    )


def describe_object(obj) -> Checkpoint:
    from diffusers import DiffusionPipeline

    if isinstance(obj, DiffusionPipeline):
        checkpoint = Checkpoint(kind="pipeline", pipeline_class=type(obj).__name__)
        for name, value in obj.config.items():
            if name.startswith("_"):
                continue
            if isinstance(value, (list, tuple)) and len(value) == 2:
                component = getattr(obj, name, None)
                if component is None:
                    continue
                checkpoint.components[name] = type(component).__name__
                if hasattr(component, "parameters"):
                    checkpoint.parameters[name] = sum(p.numel() for p in component.parameters())
            else:
                checkpoint.pipeline_config[name] = value
        if getattr(obj, "transformer", None) is not None:
            checkpoint.transformer_config = _config_dict(obj.transformer.config)
            checkpoint.text_head_is_zero = _text_head_is_zero(obj.transformer)
        return checkpoint
    peft_config = peft_config_of(obj)
    if peft_config is not None:
        checkpoint = Checkpoint(kind="adapter", adapter_config=peft_config.to_dict())
        checkpoint.parameters["adapter"] = sum(
            p.numel() for name, p in obj.named_parameters() if "lora_" in name or "modules_to_save" in name
        )
        return checkpoint
    if is_univigu_model(obj):
        checkpoint = Checkpoint(kind="model", transformer_config=_config_dict(obj.config))
        checkpoint.parameters["transformer"] = sum(p.numel() for p in obj.parameters())
        checkpoint.text_head_is_zero = _text_head_is_zero(obj)
        return checkpoint
    raise TypeError(SOURCE_TYPES_MESSAGE.format(type(obj).__name__))


SOURCE_TYPES_MESSAGE = (
    "expected a UniViGUPipeline, a UniViGUModel, a PEFT model around one, or the path of a folder holding one of "
    "these (pipeline, model, adapter or diffusers LoRA folder), got {}"
)


def _text_head_is_zero(model, rows: int = 64) -> bool:
    weight = getattr(getattr(model, "text_proj_out", None), "weight", None)
    return weight is not None and weight.device.type != "meta" and not bool(weight[:rows].any())


def _config_dict(config) -> dict:
    return dict(config.to_dict()) if hasattr(config, "to_dict") else dict(config)


def peft_config_of(obj):
    """The active PEFT config of a `PeftModel` (or `None`)."""
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency
        return None
    if isinstance(obj, PeftModel):
        return obj.peft_config[obj.active_adapter]
    return None


def describe_source(source) -> Checkpoint:
    if isinstance(source, (str, os.PathLike)):
        folder = Path(source)
        if not folder.is_dir():
            raise ValueError(f"source {os.fspath(source)!r} is not a folder; " + SOURCE_TYPES_MESSAGE.format("a path"))
        return describe_folder(folder)
    return describe_object(source)
