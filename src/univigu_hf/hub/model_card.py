"""Model cards for UniViGU pipelines, models and LoRA adapters.

`create_model_card(...)` writes the repository's front page from the checkpoint itself (architecture, defaults,
parameter counts), the training run that produced it (`training_summary.json`, written by the training scripts) and,
when given, an evaluation metrics file. See docs/hub.md. What the card says is read by `checkpoint.py` (the
checkpoint), `training_record.py` (the training run) and `eval_results.py` (the metrics); this module renders it.
"""

import os
import re
from pathlib import Path

import jinja2
import yaml
from huggingface_hub import ModelCard, ModelCardData
from transformers.utils import logging

from .checkpoint import Checkpoint, describe_source
from .eval_results import eval_results_from_metrics, evaluation_table, is_number, model_index_results
from .training_record import find_training_summary, load_json_argument, training_stages


logger = logging.get_logger(__name__)

TEMPLATE_DIR = Path(__file__).resolve().parent / "model_cards"
TEMPLATES = {"pipeline": "pipeline.md.jinja", "model": "pipeline.md.jinja", "adapter": "adapter.md.jinja"}
TEMPLATES["lora"] = "lora.md.jinja"  # a diffusers-format LoRA folder (pytorch_lora_weights.safetensors)
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
    return round(value, digits) if is_number(value) else None


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
    if checkpoint.kind in ("adapter", "lora") and looks_like_repo_id(
        checkpoint.adapter_config.get("base_model_name_or_path")
    ):
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
    adapter = checkpoint.kind in ("adapter", "lora")
    lora = lora_settings(checkpoint.adapter_config) if adapter else last.get("lora")

    base_models = resolve_base_models(checkpoint, stages, base_model)

    datasets = sorted({_hub_id(r, "dataset") for r in stages} - {None})
    library = {"pipeline": "diffusers", "model": "transformers", "adapter": "peft", "lora": "diffusers"}[
        checkpoint.kind
    ]
    tags = ["univigu", "uni-vigu", "wan2.1", "text-to-video", "video-to-text", "video-captioning"]
    if checkpoint.kind == "pipeline":
        tags.append(f"diffusers:{checkpoint.pipeline_class}")
    if checkpoint.kind == "lora":  # as diffusers' LoRA training scripts tag theirs
        tags += ["lora", "diffusers", "diffusers-training", "template:sd-lora"]
    elif adapter or lora:
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
        metadata["eval_results"] = model_index_results(results)
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
        "evaluation": evaluation_table(results),
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
