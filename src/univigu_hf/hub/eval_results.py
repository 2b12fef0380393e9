"""The evaluation results of a model card: a metrics file read into evaluation sections, the card's `model-index`
metadata (`EvalResult`s) and its evaluation table."""

import math
import re

from huggingface_hub import EvalResult


# model-index task types are Hub task ids: (Hub task, task name, the names it is also known by here, substrings of a
# metrics section name that select it). Captioning is the Hub's video-text-to-text; joint generation is any-to-any.
TASKS = (
    ("video-text-to-text", "Video captioning", ("video-to-text", "v2t"), ("caption", "video_to_text", "v2t")),
    ("any-to-any", "Joint video and caption generation", ("text-to-video-text", "joint"), ("joint", "t2vt")),
    ("text-to-video", "Text-to-video generation", ("t2v",), ("text_to_video", "t2v", "generation")),
)
_NOT_METRICS = ("num_samples", "num_examples", "samples")
_SECTION_KEYS = ("dataset", "task", "task_name", "split", "num_samples")  # the non-metric keys of a flat layout


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
        if not sections and described and all(map(is_number, described.values())):
            sections = [{**metrics, "metrics": described}]
    else:
        raise TypeError(f"metrics must be a dict or a list, got {type(metrics).__name__}")
    dataset_name, dataset_type = _dataset_of(defaults.get("dataset") if isinstance(defaults, dict) else None)
    results = []
    for section in sections:
        if not isinstance(section, dict) or not isinstance(section.get("metrics"), dict):
            raise ValueError(f"each metrics section needs a 'metrics' dict of numbers, got {section!r:.200}")
        numbers = {k: float(v) for k, v in section["metrics"].items() if is_number(v) and k not in _NOT_METRICS}
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
                "num_samples": sample_count if is_number(sample_count) else None,
            }
        )
    return results


def is_number(value) -> bool:
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


def model_index_results(results: list[dict]) -> list[EvalResult]:
    """The card's `model-index` metadata: one `EvalResult` per metric of every evaluation section."""
    return [
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


def evaluation_table(results: list[dict]) -> dict | None:
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
