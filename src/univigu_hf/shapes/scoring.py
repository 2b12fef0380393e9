"""Scoring for the shapes world (`univigu_hf.shapes`): read attributes back from videos and captions.

- [`detect_attributes`] (the detectors of `detection.py`, re-exported here) reads the seven attributes of a clip from
  its pixels (background, color, size, shape, direction, speed, start position), robustly enough for noisy or
  compressed frames;
- [`parse_caption`] reads the attributes a prompt or detailed caption states;
- [`score_videos`] (text-to-video: does the video show what the prompt asked for?) and [`score_captions`]
  (video-to-text: does the caption state the clip's true attributes?) turn them into per-attribute accuracies.

The same scores are bundled as local `evaluate` metrics (loaded offline from the installed package):

    >>> from univigu_hf.shapes.scoring import load_metric
    >>> metric = load_metric("shapes_caption_accuracy")
    >>> metric.compute(predictions=["a small red circle moving left"], references=["a small red circle moving up"])
    {'shape_accuracy': 1.0, 'color_accuracy': 1.0, 'size_accuracy': 1.0, 'direction_accuracy': 0.0, ...}

See [`metric_path`] for the names (`shapes_caption_accuracy`, `shapes_video_accuracy`, `caption_text_similarity`).
"""

import importlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .detection import ATTRIBUTES, UNKNOWN, detect_attributes, measure_clip
from .world import (
    ATTRIBUTE_VALUES,
    BACKGROUNDS,
    COLORS,
    DIRECTIONS,
    SHAPES,
    SIZES,
    SPEEDS,
    START_POSITIONS,
    ShapeAttributes,
)


PROMPT_ATTRIBUTES = ("shape", "color", "size", "direction")
VOCABULARY = ATTRIBUTE_VALUES
METRICS = ("shapes_caption_accuracy", "shapes_video_accuracy", "caption_text_similarity")


# ----- captions ---------------------------------------------------------------------------------------------------------
def _alternatives(words: Iterable[str]) -> str:
    # Longest first, so "top left" wins over "top"; spaces match any whitespace.
    return "|".join(re.escape(word).replace(r"\ ", r"\s+") for word in sorted(words, key=len, reverse=True))


_CAPTION_PATTERNS = {
    "shape": re.compile(rf"\b({_alternatives(SHAPES)})\b"),
    "color": re.compile(rf"\b({_alternatives(COLORS)})\b"),
    "size": re.compile(rf"\b({_alternatives(SIZES)})\b"),
    # "left"/"right" are both directions and start positions: a direction follows "moving", a start "from/at the".
    "direction": re.compile(rf"\bmoving\s+({_alternatives(DIRECTIONS)})\b"),
    "background": re.compile(rf"\b({_alternatives(BACKGROUNDS)})\s+(?:background|frame)\b"),
    "speed": re.compile(rf"\b({_alternatives(SPEEDS)})\b"),
    "start": re.compile(rf"\b(?:from|at)\s+the\s+({_alternatives(START_POSITIONS)})\b"),
}


def parse_caption(text: str) -> dict[str, str | None]:
    """
    The attributes a prompt or detailed caption states.

    Matches the world's fixed vocabulary (case-insensitive): a direction after "moving", a start position after
    "from the" / "at the", a background before "background" / "frame", the other words anywhere. An attribute that is
    not stated, or stated with conflicting values ("a red blue circle"), is `None`.

    Args:
        text (`str`): a prompt (`a {size} {color} {shape} moving {direction}`), a detailed caption (any of
            `CAPTION_TEMPLATES`) or a generated caption.

    Returns:
        `dict[str, str | None]`: one entry per attribute of `ATTRIBUTES`.

    Raises:
        `TypeError`: when `text` is not a string.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str (a prompt or caption), got {type(text).__name__}: {text!r}")
    normalized = " ".join(text.lower().split())
    parsed: dict[str, str | None] = {}
    for name, pattern in _CAPTION_PATTERNS.items():
        values = {" ".join(match.split()) for match in pattern.findall(normalized)}
        parsed[name] = values.pop() if len(values) == 1 else None
    return parsed


# ----- scores -----------------------------------------------------------------------------------------------------------
def _check_attributes(attributes: Sequence[str]) -> tuple[str, ...]:
    if isinstance(attributes, str) or not all(name in ATTRIBUTES for name in attributes):
        raise ValueError(f"attributes must be a sequence of names from {ATTRIBUTES}, got {attributes!r}")
    return tuple(attributes)


def _check_lengths(predictions: Sequence[Any], references: Sequence[Any], names: str) -> None:
    first, second = names.split(" and ")
    if isinstance(predictions, (str, bytes)) or isinstance(references, (str, bytes)):
        raise ValueError(f"{first} and {second} must be sequences (one item per sample), not single strings")
    if len(predictions) != len(references):
        raise ValueError(
            f"{first} and {second} must have the same length, got {len(predictions)} and {len(references)}"
        )


def as_attributes(reference: Any) -> dict[str, str | None]:
    """
    A reference (or prediction) as an attribute dict.

    Args:
        reference (`str`, `dict` or [`ShapeAttributes`]): a prompt or caption (parsed with [`parse_caption`]), a JSON
            object string of attributes, an attribute dict (keys that are not attributes, like `prompt` or `video`
            in a dataset row, are ignored) or a `ShapeAttributes`.

    Returns:
        `dict[str, str | None]`: one entry per attribute of `ATTRIBUTES` (`None` when not stated).

    Raises:
        `ValueError`: for another type, invalid JSON, a dict without any attribute, or a stated value outside the
        world's vocabulary (`VOCABULARY`).
    """
    if isinstance(reference, ShapeAttributes):
        reference = reference.to_dict()
    elif isinstance(reference, str):
        if not reference.lstrip().startswith("{"):
            return parse_caption(reference)
        try:
            reference = json.loads(reference)
        except json.JSONDecodeError as error:
            raise ValueError(f"reference looks like JSON but does not parse: {reference!r}") from error
    if not isinstance(reference, Mapping):
        raise ValueError(
            "a reference must be a prompt or caption, an attribute dict or JSON object string, or a ShapeAttributes, "
            f"got {type(reference).__name__}"
        )
    if not any(name in reference for name in ATTRIBUTES):
        raise ValueError(f"reference states none of the attributes {ATTRIBUTES}: {dict(reference)!r}")
    attributes = {name: reference.get(name) for name in ATTRIBUTES}
    for name, value in attributes.items():
        if value is not None and value not in VOCABULARY[name]:
            raise ValueError(f"reference {name} must be one of {VOCABULARY[name]} (or None), got {value!r}")
    return attributes


def score_attributes(
    predictions: Sequence[Mapping[str, Any]],
    references: Sequence[Any],
    attributes: Sequence[str] = ATTRIBUTES,
) -> dict[str, Any]:
    """
    Per-attribute accuracy of predicted attribute dicts, with counts.

    Args:
        predictions (`Sequence[dict]`): predicted attributes (a missing, `None` or `"unknown"` value is wrong).
        references (`Sequence`): one reference per prediction, anything [`as_attributes`] accepts; an attribute
            that a reference does not state is not scored for that pair.
        attributes (`Sequence[str]`, defaults to `ATTRIBUTES`): which attributes to score.

    Returns:
        `dict`: `accuracy` (attribute -> accuracy, for every attribute that at least one reference states),
        `mean_accuracy` (mean over those attributes, `nan` if none), `counts` (attribute -> number of scored pairs)
        and `num_samples`.
    """
    attributes = _check_attributes(attributes)
    _check_lengths(predictions, references, "predictions and references")
    if not all(isinstance(prediction, Mapping) for prediction in predictions):
        raise ValueError("predictions must be attribute dicts")
    references = [as_attributes(reference) for reference in references]
    accuracy, counts = {}, {}
    for name in attributes:
        hits = [
            prediction.get(name) == reference[name]
            for prediction, reference in zip(predictions, references)
            if reference[name] is not None
        ]
        if hits:
            accuracy[name], counts[name] = float(np.mean(hits)), len(hits)
    return {
        "accuracy": accuracy,
        "mean_accuracy": float(np.mean(list(accuracy.values()))) if accuracy else float("nan"),
        "counts": counts,
        "num_samples": len(predictions),
    }


def attribute_accuracy(
    predictions: Sequence[Mapping[str, Any]],
    references: Sequence[Any],
    attributes: Sequence[str] = ATTRIBUTES,
) -> dict[str, float]:
    """
    Per-attribute accuracy of attribute dicts against reference attribute dicts.

    Args:
        predictions (`Sequence[dict]`): predicted attributes (a missing, `None` or `"unknown"` value is wrong).
        references (`Sequence[dict]`): true attributes, one per prediction (or anything [`as_attributes`]
            accepts); an attribute that a reference does not state (missing or `None`) is not scored for that pair.
        attributes (`Sequence[str]`, defaults to `ATTRIBUTES`): which attributes to score.

    Returns:
        `dict[str, float]`: the accuracy of every attribute that at least one reference states.

    Raises:
        `ValueError`: when the lengths differ, an attribute name is unknown or a reference is invalid.
    """
    return score_attributes(predictions, references, attributes)["accuracy"]


def score_videos(
    videos: Iterable[Any], attributes_or_prompts: Sequence[Any], attributes: Sequence[str] = ATTRIBUTES
) -> dict[str, Any]:
    """
    How well videos show what was asked for: [`detect_attributes`] of each video against its intended attributes.

    Args:
        videos: clips as accepted by [`detect_attributes`] (a list, or a batch array/tensor with a leading batch
            dimension).
        attributes_or_prompts (`Sequence`): one reference per video: a prompt (scores the 4 prompt attributes), a
            detailed caption, an attribute dict / JSON string or a [`ShapeAttributes`] (every stated attribute).
        attributes (`Sequence[str]`, defaults to `ATTRIBUTES`): which attributes to score.

    Returns:
        `dict`: `accuracy` (attribute -> accuracy), `mean_accuracy` (over the scored attributes), `counts`
        (attribute -> number of scored videos) and `num_samples` (see [`score_attributes`]).

    Example:

    ```python
    >>> from univigu_hf import shapes
    >>> clips = list(shapes.generate_clips(8, seed=0, split="all"))
    >>> score_videos([clip.frames for clip in clips], [clip.prompt for clip in clips])["mean_accuracy"]
    1.0
    ```
    """
    videos = list(videos)
    _check_lengths(videos, attributes_or_prompts, "videos and attributes_or_prompts")
    references = [as_attributes(reference) for reference in attributes_or_prompts]
    return score_attributes([detect_attributes(video) for video in videos], references, attributes)


def score_captions(
    captions: Sequence[str], references: Sequence[Any], attributes: Sequence[str] = ATTRIBUTES
) -> dict[str, Any]:
    """
    How well captions describe their clips: [`parse_caption`] of each caption against the true attributes.

    Args:
        captions (`Sequence[str]`): generated captions.
        references (`Sequence`): one per caption: a ground-truth attribute dict / JSON string / [`ShapeAttributes`],
            or a ground-truth caption or prompt (then only the attributes it states are scored).
        attributes (`Sequence[str]`, defaults to `ATTRIBUTES`): which attributes to score.

    Returns:
        `dict`: `accuracy` (attribute -> accuracy), `mean_accuracy`, `counts` (attribute -> number of scored
        captions) and `num_samples` (see [`score_attributes`]).
    """
    _check_lengths(captions, references, "captions and references")
    return score_attributes([parse_caption(caption) for caption in captions], references, attributes)


def flatten_scores(scores: Mapping[str, Any]) -> dict[str, float]:
    """
    A [`score_attributes`] result as flat floats, the form the bundled `evaluate` metrics return.

    Args:
        scores (`dict`): the output of [`score_attributes`], [`score_videos`] or [`score_captions`].

    Returns:
        `dict[str, float]`: `{attribute}_accuracy` per scored attribute, `mean_accuracy` and `num_samples`.
    """
    flat = {f"{name}_accuracy": value for name, value in scores["accuracy"].items()}
    flat["mean_accuracy"] = scores["mean_accuracy"]
    flat["num_samples"] = scores["num_samples"]
    return flat


# ----- bundled evaluate metrics -----------------------------------------------------------------------------------------
def metric_path(name: str) -> str:
    """
    The folder of a bundled `evaluate` metric (for `evaluate.load(metric_path(name))`, which works offline).

    Args:
        name (`str`): one of `METRICS`: `"shapes_caption_accuracy"`, `"shapes_video_accuracy"` or
            `"caption_text_similarity"` (needs the `eval` extra: `pip install univigu_hf[eval]`).

    Returns:
        `str`: the absolute path of the metric folder.
    """
    if name not in METRICS:
        raise ValueError(f"name must be one of {METRICS}, got {name!r}")
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "metrics", name)


def load_metric(name: str, **kwargs):
    """
    `evaluate.load(metric_path(name), **kwargs)`: a bundled metric as an `evaluate.Metric`.

    Args:
        name (`str`): one of `METRICS`.
        **kwargs: passed to `evaluate.load`.

    Returns:
        `evaluate.EvaluationModule`: the loaded metric.
    """
    import evaluate

    return evaluate.load(metric_path(name), **kwargs)


def require_text_similarity() -> None:
    """
    Checks that the packages behind [`text_similarity`] (the `eval` extra) are installed.

    Raises:
        `ImportError`: naming the `eval` extra, when `sacrebleu` or `rouge-score` is missing.
    """
    missing = []
    for module, package in (("sacrebleu", "sacrebleu>=2.4"), ("rouge_score", "rouge-score>=0.1.2")):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise ImportError(
            f"caption text similarity needs {' and '.join(missing)}: install the `eval` extra "
            "(`pip install 'univigu_hf[eval]'`)"
        )


def text_similarity(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """
    Caption text similarity: corpus BLEU (`sacrebleu.corpus_bleu`, 0..100) and ROUGE-L F1 (`rouge_score`, with
    stemming, 0..1) averaged over the pairs.

    Args:
        predictions (`Sequence[str]`): generated captions.
        references (`Sequence[str]`): one reference caption per prediction.

    Returns:
        `dict[str, float]`: `bleu` and `rougeL` (`nan` without samples).

    Raises:
        `ImportError`: without `sacrebleu` / `rouge-score` (`pip install 'univigu_hf[eval]'`).
        `ValueError`: when the inputs are not sequences of strings of the same length.
    """
    _check_lengths(predictions, references, "predictions and references")
    if not all(isinstance(text, str) for text in [*predictions, *references]):
        raise ValueError("predictions and references must be strings")
    require_text_similarity()
    import sacrebleu
    from rouge_score import rouge_scorer

    if not predictions:
        return {"bleu": float("nan"), "rougeL": float("nan")}
    bleu = sacrebleu.corpus_bleu(list(predictions), [list(references)]).score
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rouge = [
        scorer.score(target, prediction)["rougeL"].fmeasure for prediction, target in zip(predictions, references)
    ]
    return {"bleu": float(bleu), "rougeL": float(np.mean(rouge))}


class StringEncodedInputsMixin:
    """
    For the bundled `evaluate.Metric`s, whose stored features are strings: predictions and references are encoded as
    they are added (`_encode_prediction`, `_encode_reference`; attribute dicts become JSON), so large inputs such as
    videos never enter evaluate's Arrow table.
    """

    def _encode_prediction(self, prediction):
        return prediction

    def _encode_reference(self, reference):
        return reference if isinstance(reference, str) else json.dumps(as_attributes(reference))

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Adds a batch of predictions and references, encoded."""
        if predictions is not None:
            predictions = [self._encode_prediction(prediction) for prediction in predictions]
        if references is not None and not isinstance(references, str):
            references = [self._encode_reference(reference) for reference in references]
        return super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Adds one prediction and reference, encoded."""
        if prediction is not None:
            prediction = self._encode_prediction(prediction)
        if reference is not None:
            reference = self._encode_reference(reference)
        return super().add(prediction=prediction, reference=reference, **kwargs)


__all__ = [
    "StringEncodedInputsMixin",
    "ATTRIBUTES",
    "METRICS",
    "PROMPT_ATTRIBUTES",
    "UNKNOWN",
    "VOCABULARY",
    "as_attributes",
    "attribute_accuracy",
    "detect_attributes",
    "flatten_scores",
    "load_metric",
    "measure_clip",
    "metric_path",
    "parse_caption",
    "require_text_similarity",
    "score_attributes",
    "score_captions",
    "score_videos",
    "text_similarity",
]
