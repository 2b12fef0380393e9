"""The training record of a checkpoint (`training_summary.json`, written by the training scripts) and the JSON
arguments of [`create_model_card`] (a dict, or the path of a JSON file)."""

import json
import os
from pathlib import Path

from .checkpoint import Checkpoint, read_json


TRAINING_SUMMARY_NAME = "training_summary.json"


def load_json_argument(name: str, value) -> dict | list | None:
    """`value` itself when it is a dict, a list or `None`, else the JSON file it is the path of (`name` is the
    argument's name, for the error messages)."""
    if value is None or isinstance(value, (dict, list)):
        return value
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if not path.is_file():
            raise FileNotFoundError(f"{name} file not found: {os.fspath(value)!r}")
        try:
            return read_json(path)
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
            return read_json(path)
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
