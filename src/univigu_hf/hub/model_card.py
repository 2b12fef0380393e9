"""Model cards for UniViGU pipelines, models and LoRA adapters.

`create_model_card(...)` writes the repository's front page from the checkpoint itself (architecture, defaults,
parameter counts), the training run that produced it (`training_summary.json`, written by the training scripts) and,
when given, an evaluation metrics file. See docs/hub.md.
"""

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from transformers.utils import logging


logger = logging.get_logger(__name__)

TEMPLATE_DIR = Path(__file__).resolve().parent / "model_cards"
TEMPLATES = {"pipeline": "pipeline.md.jinja", "model": "pipeline.md.jinja", "adapter": "adapter.md.jinja"}
TRAINING_SUMMARY_NAME = "training_summary.json"
# `UniViGUConfig.model_type` (a test keeps them equal): the hub tells a UniViGU model by its config, without importing
# the models package (which imports the hub for `push_to_hub`).
UNIVIGU_MODEL_TYPE = "univigu"
CARD_NAME = "README.md"
DEFAULT_LICENSE = "apache-2.0"  # Wan2.1 and the official Uni-ViGU code are Apache-2.0
DEFAULT_EXAMPLE_PROMPT = "a red ball rolls across a wooden table"
STAGES = {
    "base": (
        "Wan text-to-video base",
        "Stage 0: plain Wan2.1 text-to-video training of the video path (`UniFlowTrainingConfig(video_only=True)`); "
        "the result is a diffusers `WanPipeline`, the base the Uni-ViGU stages grow from.",
    ),
    "recall": (
        "Knowledge Recall",
        "Stage 1, Knowledge Recall: the text stream learns to reconstruct each video's generation prompt, with the "
        "prompt condition dropped at random so that it cannot be copied. Captions therefore read like generation "
        "prompts; Capability Refinement is the stage that teaches detailed captions.",
    ),
    "refine": (
        "Capability Refinement",
        "Stage 2, Capability Refinement: the text stream is fine-tuned on detailed captions (the video is denoised "
        "alongside, so text-to-video stays trained), establishing discriminative shared representations.",
    ),
    "untrained": (
        "untrained text branch",
        "Not trained as Uni-ViGU: the text branch was grown from a Wan2.1 generator (`UniViGUPipeline.from_wan`) and "
        "is untrained (its text head is still all zeros), so captions are noise until Knowledge Recall and Capability "
        "Refinement; text-to-video is exactly the Wan base model's.",
    ),
    None: (
        "not recorded",
        "No training record came with this checkpoint (the training scripts write one as `training_summary.json`).",
    ),
}
TRAINABLE_DESCRIPTIONS = {  # the training scripts' --trainable
    "all": "all parameters",
    "text": "text branch only (video path frozen)",
    "video": "video path",
}
# model-index task types are Hub task ids: (Hub task, task name, the names it is also known by here, substrings of a
# metrics section name that select it). Captioning is the Hub's video-text-to-text; joint generation is any-to-any.
TASKS = (
    ("video-text-to-text", "Video captioning", ("video-to-text", "v2t"), ("caption", "video_to_text", "v2t")),
    ("any-to-any", "Joint video and caption generation", ("text-to-video-text", "joint"), ("joint", "t2vt")),
    ("text-to-video", "Text-to-video generation", ("t2v",), ("text_to_video", "t2v", "generation")),
)
_NOT_METRICS = ("num_samples", "num_examples", "samples")
_SECTION_KEYS = ("dataset", "task", "task_name", "split", "num_samples")  # the non-metric keys of a flat layout


# ------------------------------------------------------------------------------------------------------------------
# What a card is made of
# ------------------------------------------------------------------------------------------------------------------
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


def _read_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _folder_kind(folder: Path) -> str:
    if (folder / "model_index.json").is_file():
        return "pipeline"
    if (folder / "adapter_config.json").is_file():
        return "adapter"
    if (folder / "config.json").is_file():
        model_type = _read_json(folder / "config.json").get("model_type")
        if model_type == "univigu":
            return "model"
        raise ValueError(
            f"{os.fspath(folder)!r} holds a config.json of model_type {model_type!r}; expected a UniViGU model "
            "('univigu'), a pipeline folder (model_index.json) or a PEFT adapter folder (adapter_config.json)"
        )
    raise ValueError(
        f"{os.fspath(folder)!r} is not a checkpoint folder: expected a pipeline (model_index.json), a UniViGU model "
        "(config.json) or a PEFT adapter (adapter_config.json)"
    )


def describe_folder(folder: Path) -> Checkpoint:
    kind = _folder_kind(folder)
    checkpoint = Checkpoint(kind=kind, folder=folder)
    if kind == "pipeline":
        index = _read_json(folder / "model_index.json")
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
            checkpoint.transformer_config = _read_json(folder / "transformer" / "config.json")
            checkpoint.text_head_is_zero = _saved_text_head_is_zero(folder / "transformer")
    elif kind == "model":
        checkpoint.transformer_config = _read_json(folder / "config.json")
        checkpoint.parameters["transformer"] = _folder_parameter_count(folder)
        checkpoint.text_head_is_zero = _saved_text_head_is_zero(folder)
    else:
        checkpoint.adapter_config = _read_json(folder / "adapter_config.json")
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
    "these (pipeline, model or adapter folder), got {}"
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


# ------------------------------------------------------------------------------------------------------------------
# Training record and metrics
# ------------------------------------------------------------------------------------------------------------------
def load_json_argument(name: str, value) -> dict | list | None:
    if value is None or isinstance(value, (dict, list)):
        return value
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if not path.is_file():
            raise FileNotFoundError(f"{name} file not found: {os.fspath(value)!r}")
        try:
            return _read_json(path)
        except json.JSONDecodeError as error:
            raise ValueError(f"{name} file {os.fspath(value)!r} is not valid JSON ({error})") from error
    raise TypeError(f"{name} must be a dict or the path of a JSON file, got {type(value).__name__}")


def find_training_summary(checkpoint: Checkpoint) -> dict | None:
    """The `training_summary.json` next to a checkpoint folder (for `output/adapter`, the one in `output/`)."""
    if checkpoint.folder is None:
        return None
    for folder in (checkpoint.folder, checkpoint.folder.parent):
        path = folder / TRAINING_SUMMARY_NAME
        if path.is_file():
            return _read_json(path)
        if checkpoint.kind != "adapter":
            break
    return None


def training_stages(summary: dict | None) -> list[dict]:
    """
    The stage records of a training summary (as the training scripts write `training_summary.json`): its `stages`
    list (every stage that led to the checkpoint, oldest first), or the summary itself as one stage.
    """
    if not summary:
        return []
    if isinstance(summary.get("stages"), list):
        return [stage for stage in summary["stages"] if isinstance(stage, dict)]
    return [summary]


def eval_results_from_metrics(metrics: dict | list, *, default_task: str = "text-to-video") -> list[dict]:
    """
    Reads a metrics file into a list of evaluation sections, each `{"section", "task", "task_name", "dataset",
    "dataset_type", "split", "metrics": {name: value}, "num_samples"}`. `task` is a Hub task id (captioning:
    `video-text-to-text`, joint generation: `any-to-any`; `"video-to-text"` and `"text-to-video-text"` are accepted as
    aliases). Accepted layouts (see docs/hub.md):

    - `{"results": [{"task": ..., "dataset": ..., "metrics": {...}}, ...]}` (or that list alone);
    - sections `{"<name>": {"metrics": {...}, ...}, ...}`, e.g. the shapes-world `docs/results/shapes.json` (other
      top-level entries are ignored): the task is read from the section name (`caption...` -> video-text-to-text,
      `text_to_video` -> text-to-video, `joint` -> any-to-any) unless the section has a `"task"`;
    - a flat `{"metric": value, ...}` of numbers only (one section of `default_task`, or of its `"task"`).

    A top-level `"dataset"` (a string or `{"name", "type"}`) names the evaluation data for every section.
    """
    if isinstance(metrics, dict) and isinstance(metrics.get("results"), list):
        sections, defaults = metrics["results"], metrics
    elif isinstance(metrics, list):
        sections, defaults = metrics, {}
    elif isinstance(metrics, dict):
        defaults = metrics
        sections = []
        for name, value in metrics.items():
            if isinstance(value, dict) and isinstance(value.get("metrics"), dict):
                sections.append({"name": name, **value})
        described = {k: v for k, v in metrics.items() if k not in _SECTION_KEYS}
        if not sections and described and all(map(_is_number, described.values())):
            sections = [{**metrics, "metrics": described}]
    else:
        raise TypeError(f"metrics must be a dict or a list, got {type(metrics).__name__}")
    dataset_name, dataset_type = _dataset_of(defaults.get("dataset") if isinstance(defaults, dict) else None)
    results = []
    for section in sections:
        if not isinstance(section, dict) or not isinstance(section.get("metrics"), dict):
            raise ValueError(f"each metrics section needs a 'metrics' dict of numbers, got {section!r:.200}")
        numbers = {k: float(v) for k, v in section["metrics"].items() if _is_number(v) and k not in _NOT_METRICS}
        if not numbers:
            continue
        name = section.get("name", "")
        task, task_name = _task_of(name, section.get("task"), default_task)
        own_name, own_type = _dataset_of(section.get("dataset"))
        sample_count = section["metrics"].get("num_samples", section.get("num_samples"))
        results.append(
            {
                "section": name,
                "task": task,
                "task_name": section.get("task_name", task_name),
                "dataset": own_name or dataset_name or (_humanize(name) if name else "evaluation set"),
                "dataset_type": own_type or dataset_type or "custom",
                "split": section.get("split") or (name or None),
                "metrics": numbers,
                "num_samples": sample_count if _is_number(sample_count) else None,
            }
        )
    return results


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _dataset_of(value) -> tuple[str | None, str | None]:
    if isinstance(value, str):
        return value, None
    if isinstance(value, dict):
        return value.get("name"), value.get("type")
    return None, None


def _task_of(section_name: str, explicit: str | None, default: str) -> tuple[str, str]:
    """The (Hub task id, task name) of a metrics section: its explicit `"task"`, else guessed from its name."""

    def lookup(name: str) -> tuple[str, str]:
        for task, task_name, aliases, _ in TASKS:
            if name in (task, *aliases):
                return task, task_name
        return name, _humanize(name)

    if explicit:
        return lookup(explicit)
    lowered = section_name.lower()
    for task, task_name, _, needles in TASKS:
        if any(needle in lowered for needle in needles):
            return task, task_name
    return lookup(default)


def _humanize(name: str) -> str:
    return re.sub(r"[_\-]+", " ", name).strip()


def _metric_type_and_name(key: str) -> tuple[str, str]:
    lowered = key.lower()
    if lowered.endswith("accuracy"):
        return "accuracy", _humanize(key)
    if lowered.startswith("rouge"):
        return "rouge", key.replace("rougeL", "ROUGE-L").replace("rouge", "ROUGE-")
    if lowered in ("bleu", "sacrebleu"):
        return "bleu", "BLEU"
    return lowered, _humanize(key)


# ------------------------------------------------------------------------------------------------------------------
# The card
# ------------------------------------------------------------------------------------------------------------------
def looks_like_repo_id(value) -> bool:
    return (
        isinstance(value, str)
        and re.fullmatch(r"[A-Za-z0-9][\w.\-]*/[\w.\-]+", value) is not None
        and not os.path.exists(value)
    )


def _hub_id(record: dict, key: str) -> str | None:
    """`record[key]` if it names a Hub repository: the training scripts record `<key>_is_local` (a relative local path
    such as `data/videos` looks like a repo id once the card is written elsewhere); older records are guessed."""
    value = record.get(key)
    local = record.get(f"{key}_is_local")
    if local is not None:
        return value if not local and isinstance(value, str) else None
    return value if looks_like_repo_id(value) else None


def _format_count(count: int | None) -> str:
    if not count:
        return "unknown"
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= scale:
            return f"{count / scale:.2f}{unit} ({count:,})"
    return f"{count:,}"


def _display(record: dict, key: str, kind: str) -> str | None:
    """A Hub repository as a link; a local path by its folder name only (cards are public, local paths are not)."""
    value = record.get(key)
    if not value:
        return None
    hub_id = _hub_id(record, key)
    if hub_id is not None:
        prefix = "datasets/" if kind == "dataset" else ""
        return f"[{hub_id}](https://huggingface.co/{prefix}{hub_id})"
    return f"a local {kind} (`{Path(str(value)).name}`)"


def _stage_rows(stages: list[dict]) -> list[dict]:
    rows = []
    for record in stages:
        args = record.get("training_args") or {}
        lora = record.get("lora")
        batch = record.get("effective_batch_size")
        if batch is None and args.get("per_device_train_batch_size"):
            batch = args["per_device_train_batch_size"] * args.get("gradient_accumulation_steps", 1)
            batch *= record.get("world_size", 1) or 1
        precision = "bf16" if args.get("bf16") else "fp16" if args.get("fp16") else "fp32"
        metrics = record.get("metrics") or {}
        if lora:
            trainable = f"LoRA r={lora.get('r')}, alpha={lora.get('lora_alpha')} on {', '.join(_as_list(lora.get('target_modules')))}"
            if lora.get("modules_to_save"):
                trainable += f" (+ full {', '.join(_as_list(lora['modules_to_save']))})"
        else:
            trainable = TRAINABLE_DESCRIPTIONS.get(record.get("trainable"), record.get("trainable") or "?")
        rows.append(
            {
                "stage": STAGES.get(record.get("stage"), (record.get("stage") or "?",))[0],
                "steps": record.get("global_step") or args.get("max_steps") or "?",
                "data": _display(record, "dataset", "dataset") or "?",
                "examples": record.get("num_examples", "?"),
                "trainable": trainable,
                "learning_rate": args.get("learning_rate", "?"),
                "batch": batch or "?",
                "precision": precision,
                "loss_video": _round(metrics.get("loss_video")),
                "loss_text": _round(metrics.get("loss_text")),
            }
        )
    return rows


def _as_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return sorted(str(v) for v in value)


def _round(value, digits: int = 4):
    return round(value, digits) if _is_number(value) else None


def _evaluation_table(results: list[dict]) -> dict | None:
    """The card's evaluation table: one column per evaluated section, one row per metric."""
    if not results:
        return None
    columns = []
    for result in results:
        details = [_humanize(result["split"])] if result["split"] else []
        details += [f"n={int(result['num_samples'])}"] if result["num_samples"] else []
        title = f"{result['task_name']}: {result['dataset']}" + (f" ({', '.join(details)})" if details else "")
        columns.append(title)
    names = list(dict.fromkeys(key for result in results for key in result["metrics"]))
    rows = [
        {
            "metric": _metric_type_and_name(key)[1],
            "values": [f"{r['metrics'][key]:.4g}" if key in r["metrics"] else "" for r in results],
        }
        for key in names
    ]
    return {"columns": columns, "rows": rows}


def lora_settings(adapter_config: dict) -> dict:
    """The LoRA settings a card shows, from a PEFT config dict (empty values left out, module lists sorted)."""
    keys = ("r", "lora_alpha", "lora_dropout", "target_modules", "modules_to_save", "use_rslora", "use_dora")
    settings = {key: adapter_config.get(key) for key in keys if adapter_config.get(key) not in (None, False, [])}
    for key in ("target_modules", "modules_to_save"):
        if key in settings:
            settings[key] = _as_list(settings[key])
    return settings


def resolve_base_models(checkpoint: Checkpoint, stages: list[dict], base_model) -> list[str]:
    """`base_model` as given, else the adapter's base or the latest training stage's `init_from` that is a Hub repo."""
    if base_model is not None:
        if isinstance(base_model, str):
            return [base_model]
        if isinstance(base_model, (list, tuple)) and all(isinstance(b, str) for b in base_model):
            return list(base_model)
        raise TypeError(f"base_model must be a repo id or a list of repo ids, got {base_model!r}")
    if checkpoint.kind == "adapter" and looks_like_repo_id(checkpoint.adapter_config.get("base_model_name_or_path")):
        return [checkpoint.adapter_config["base_model_name_or_path"]]
    for stage in reversed(stages):
        if _hub_id(stage, "init_from") is not None:
            return [stage["init_from"]]
    return []


def create_model_card(
    source,
    *,
    repo_id: str | None = None,
    base_model: str | list[str] | None = None,
    training: dict | str | os.PathLike | None = None,
    metrics: dict | list | str | os.PathLike | None = None,
    card_data: dict | ModelCardData | None = None,
    model_name: str | None = None,
    description: str | None = None,
    example_prompt: str | None = None,
    limitations: str | None = None,
) -> ModelCard:
    r"""
    Writes the model card (the repository's `README.md`) of a UniViGU checkpoint.

    Args:
        source: a [`UniViGUPipeline`] (or the `WanPipeline` of the base stage), a [`UniViGUModel`], a `PeftModel`
            around one, or the folder of any of these (a pipeline folder, a model folder, an adapter folder).
        repo_id (`str`, *optional*): the repository the card is for (used in the usage snippets and as the model
            name); default: the folder name.
        base_model (`str` or `list[str]`, *optional*): the Hub repository this checkpoint derives from (`base_model`
            metadata; for an adapter, the model it applies to). Default: the training run's `init_from` when it is a
            Hub repo id, or the adapter's `base_model_name_or_path` when it is one.
        training (`dict` or path, *optional*): the training record (`training_summary.json` of the training
            scripts). Default: the `training_summary.json` in the folder (for an adapter folder, also its parent).
        metrics (`dict`, `list` or path, *optional*): evaluation results, for the card's table and its `model-index`
            metadata (layouts: [`eval_results_from_metrics`]).
        card_data (`dict` or `ModelCardData`, *optional*): metadata that overrides or extends the generated fields
            (`license`, `datasets`, `tags` (added to the defaults), `language`, `pipeline_tag`, ...).
        model_name (`str`, *optional*): the card's title (default: the repository name).
        description (`str`, *optional*): a paragraph that opens the card, before the generated description.
        example_prompt (`str`, *optional*): the prompt used in the usage snippets.
        limitations (`str`, *optional*): extra text for the limitations section.

    Returns:
        `huggingface_hub.ModelCard`: `card.data` holds the metadata, `str(card)` the markdown; `card.save(path)`.
    """
    if repo_id is not None and (not isinstance(repo_id, str) or not repo_id.strip("/")):
        raise ValueError(f"repo_id must be a non-empty string such as 'user/name', got {repo_id!r}")
    checkpoint = describe_source(source)
    summary = load_json_argument("training", training)
    if summary is None:
        summary = find_training_summary(checkpoint)
    if summary is not None and not isinstance(summary, dict):
        raise TypeError(f"training must describe one run as a JSON object, got {type(summary).__name__}")
    stages = training_stages(summary)
    last = stages[-1] if stages else {}
    metrics_data = load_json_argument("metrics", metrics)
    results = []
    if metrics_data is not None:
        results = eval_results_from_metrics(metrics_data)
        if not results:
            raise ValueError(
                f"metrics {metrics if isinstance(metrics, (str, os.PathLike)) else 'dict'!s:.200} holds no evaluation "
                "results: expected {'results': [{'task', 'dataset', 'metrics': {...}}]}, sections with a 'metrics' "
                "dict, or a flat dict of numbers (see univigu_hf.hub.eval_results_from_metrics)"
            )
    extra = card_data.to_dict() if isinstance(card_data, ModelCardData) else dict(card_data or {})

    name = model_name or (repo_id.split("/")[-1] if repo_id else None)
    if name is None:
        name = checkpoint.folder.resolve().name if checkpoint.folder is not None else f"univigu-{checkpoint.kind}"
    usage_id = repo_id or "<user>/<repo>"
    adapter = checkpoint.kind == "adapter"
    lora = lora_settings(checkpoint.adapter_config) if adapter else last.get("lora")

    base_models = resolve_base_models(checkpoint, stages, base_model)

    datasets = sorted({_hub_id(r, "dataset") for r in stages} - {None})
    library = {"pipeline": "diffusers", "model": "transformers", "adapter": "peft"}[checkpoint.kind]
    tags = ["univigu", "uni-vigu", "wan2.1", "text-to-video", "video-to-text", "video-captioning"]
    if checkpoint.kind == "pipeline":
        tags.append(f"diffusers:{checkpoint.pipeline_class}")
    if adapter or lora:
        tags += ["lora", "peft"]
    tags += [t for t in _as_list(extra.pop("tags", None)) if t not in tags]
    metadata = {
        "library_name": library,
        "pipeline_tag": "text-to-video",
        "license": DEFAULT_LICENSE,
        "tags": tags,
    }
    if base_models:
        metadata["base_model"] = base_models[0] if len(base_models) == 1 else base_models
        if adapter:
            metadata["base_model_relation"] = "adapter"
    if datasets:
        metadata["datasets"] = datasets
    if results:
        metadata["model_name"] = name
        metadata["eval_results"] = [
            EvalResult(
                task_type=result["task"],
                task_name=result["task_name"],
                dataset_type=result["dataset_type"],
                dataset_name=result["dataset"],
                dataset_split=result["split"],
                metric_type=_metric_type_and_name(key)[0],
                metric_name=_metric_type_and_name(key)[1],
                metric_value=value,
            )
            for result in results
            for key, value in result["metrics"].items()
        ]
    metadata.update(extra)
    data = ModelCardData(**metadata)

    stage_key = last.get("stage") if stages else None
    if checkpoint.pipeline_class == "WanPipeline":
        stage_key = "base"
    elif stage_key is None and checkpoint.text_head_is_zero:
        stage_key = "untrained"  # from_wan zero-initialises the text head; any text training moves it
    transformer = checkpoint.transformer_config
    context = {
        "card_data": data.to_yaml(),
        "kind": checkpoint.kind,
        "model_name": name,
        "repo_id": usage_id,
        "description": description,
        "pipeline_class": checkpoint.pipeline_class,
        "components": checkpoint.components,
        "pipeline_config": checkpoint.pipeline_config,
        "transformer": transformer,
        "text_ffn_dim": transformer.get("text_ffn_dim") or transformer.get("ffn_dim"),
        "width": (transformer.get("num_attention_heads") or 0) * (transformer.get("attention_head_dim") or 0),
        "parameters": {k: _format_count(v) for k, v in checkpoint.parameters.items()},
        "total_parameters": _format_count(sum(checkpoint.parameters.values())) if checkpoint.parameters else None,
        "stage_title": STAGES.get(stage_key, (stage_key,))[0],
        "stage_description": STAGES.get(stage_key, (None, f"Trained with the `{stage_key}` stage."))[1],
        "stages": _stage_rows(stages),
        "last_stage": last,
        "init_from": _display(last, "init_from", "checkpoint"),
        "lora": lora,
        "adapter_subfolder": checkpoint.folder is not None
        and (checkpoint.folder / "adapter" / "adapter_config.json").is_file(),
        "adapter_base": base_models[0] if base_models else None,  # a local base path stays out of the card
        "evaluation": _evaluation_table(results),
        "example_prompt": example_prompt or DEFAULT_EXAMPLE_PROMPT,
        "limitations": limitations,
        "license": data.license,
    }
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    text = environment.get_template(TEMPLATES[checkpoint.kind]).render(**context)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return ModelCard(text)


def card_metadata(card: ModelCard | str) -> dict:
    """The YAML metadata block of a card (`ModelCard` or markdown) as a plain dict."""
    text = str(card)
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    if match is None:
        raise ValueError("the card has no YAML metadata block")
    return yaml.safe_load(match.group(1))
