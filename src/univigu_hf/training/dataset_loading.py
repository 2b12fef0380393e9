"""Loading a video-text dataset for Uni-ViGU training: a local folder or file, or a Hub dataset, checked for the
columns that the training stage needs (see [`prepare_dataset`] for what is computed from it)."""

import os

import datasets


STAGES = ("recall", "refine")
"""Training stages: `"recall"` trains the text stream on the prompt, `"refine"` on the detailed caption."""

METADATA_FILES = ("metadata.jsonl", "metadata.csv")
"""Metadata file names looked up, in this order, in a local dataset folder."""

_FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
_COLUMN_ROLES = {"video_column": "video", "prompt_column": "prompt", "caption_column": "caption"}


def load_video_dataset(
    dataset_name: str | os.PathLike,
    *,
    split: str = "train",
    video_column: str = "file_name",
    prompt_column: str = "prompt",
    caption_column: str = "caption",
    stage: str = "recall",
    dataset_config: str | None = None,
) -> tuple[datasets.Dataset, str | None]:
    """
    Loads a video-text dataset and checks that it has the columns the training `stage` needs.

    `dataset_name` can be:

    - a local folder with a `metadata.jsonl` (or `metadata.csv`) file, the `datasets` folder convention: one row per
      clip, the video column holding paths relative to the folder (absolute paths work too). The metadata is read
      with the `json`/`csv` builder (the `videofolder` builder needs a video decoding backend and is not used);
    - a local `.jsonl`, `.json`, `.csv` or `.parquet` file: video paths are relative to the file's folder;
    - a local folder without a metadata file (e.g. a clone of a Hub dataset repository): loaded with
      `datasets.load_dataset(folder, dataset_config, split=split)`, video paths relative to the folder;
    - otherwise a Hub dataset name, loaded with `datasets.load_dataset(dataset_name, dataset_config, split=split)`;
      its video paths are used as they are (absolute, or relative to the working directory).

    Args:
        dataset_name (`str` or `os.PathLike`): the folder, file or Hub dataset name.
        split (`str`, defaults to `"train"`): the split to load. Local metadata files only have `"train"`, which
            accepts the `datasets` slicing syntax (e.g. `"train[:100]"`).
        video_column (`str`, defaults to `"file_name"`): the column with the video paths.
        prompt_column (`str`, defaults to `"prompt"`): the column with the (short) generation prompts.
        caption_column (`str`, defaults to `"caption"`): the column with the detailed captions; only required for
            `stage="refine"`.
        stage (`str`, defaults to `"recall"`): one of [`STAGES`].
        dataset_config (`str`, *optional*): the configuration name of a Hub dataset.

    Returns:
        `tuple[datasets.Dataset, str | None]`: the dataset and the directory that relative video paths are resolved
        against (pass it as `base_dir` to [`prepare_dataset`]); `None` for a Hub dataset.

    Raises:
        `ValueError`: for an unknown `stage`, a missing column (the message names the column, the argument that
            overrides it and the available columns), an empty dataset, or a local file of an unsupported type.
        `FileNotFoundError`: when `dataset_name` looks like a local path that does not exist.
    """
    check_stage(stage)
    name = os.fspath(dataset_name)
    path = os.path.expanduser(name)
    if os.path.isdir(path):
        base_dir = os.path.abspath(path)
        metadata = next((os.path.join(path, f) for f in METADATA_FILES if os.path.isfile(os.path.join(path, f))), None)
        if metadata is not None:
            dataset = _load_data_file(metadata, split)
        else:
            dataset = datasets.load_dataset(path, dataset_config, split=split)
    elif os.path.isfile(path):
        base_dir = os.path.dirname(os.path.abspath(path))
        dataset = _load_data_file(path, split)
    elif _looks_like_local_path(name):
        raise FileNotFoundError(f"dataset {name!r} not found: no such file or folder")
    else:
        base_dir = None
        dataset = datasets.load_dataset(name, dataset_config, split=split)
    if not isinstance(dataset, datasets.Dataset):
        raise ValueError(f"expected a map-style datasets.Dataset for split {split!r}, got {type(dataset).__name__}")
    check_columns(
        dataset, stage=stage, video_column=video_column, prompt_column=prompt_column, caption_column=caption_column
    )
    if len(dataset) == 0:
        raise ValueError(f"dataset {name!r} (split {split!r}) is empty")
    return dataset, base_dir


def _load_data_file(path: str, split: str) -> datasets.Dataset:
    extension = os.path.splitext(path)[1].lower()
    builder = _FILE_BUILDERS.get(extension)
    if builder is None:
        raise ValueError(
            f"unsupported metadata file {path!r}: expected one of {sorted(_FILE_BUILDERS)} (or a folder with "
            f"{' or '.join(METADATA_FILES)})"
        )
    if _is_empty_data_file(path, extension):  # `datasets` fails on these with unhelpful errors
        raise ValueError(f"dataset file {path!r} is empty (no rows)")
    return datasets.load_dataset(builder, data_files=os.path.abspath(path), split=split)


def _is_empty_data_file(path: str, extension: str) -> bool:
    if extension == ".parquet":
        return False
    if extension == ".json" and os.path.getsize(path) > 64:
        return False
    with open(path, encoding="utf-8", errors="replace") as handle:
        if extension == ".json":
            return "".join(handle.read().split()) in ("", "[]", "{}")
        needed = 2 if extension == ".csv" else 1  # a csv header is not a row
        found = 0
        for line in handle:
            found += bool(line.strip())
            if found >= needed:
                return False
    return True


def _looks_like_local_path(name: str) -> bool:
    return (
        name.startswith(("/", "./", "../", "~", ".\\", "..\\"))
        or os.path.isabs(name)
        or os.path.splitext(name)[1].lower() in _FILE_BUILDERS
        or name.count("/") > 1
    )


def check_stage(stage: str) -> None:
    """Refuses a `stage` that is not one of [`STAGES`]."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")


def check_columns(dataset: datasets.Dataset, *, stage: str, **columns: str) -> None:
    """Refuses a dataset without the columns (`video_column=...` and the others, by argument name) that `stage`
    reads, naming the argument that chooses another column."""
    required = ["video_column", "prompt_column"] + (["caption_column"] if stage == "refine" else [])
    available = list(dataset.column_names)
    for argument in required:
        column = columns[argument]
        if column not in available:
            needed = f" (needed for stage {stage!r})" if argument == "caption_column" else ""
            raise ValueError(
                f"the {_COLUMN_ROLES[argument]} column {column!r} is not in the dataset{needed}; pass "
                f"--{argument} (`{argument}=`) to use another column. Available columns: {available}"
            )


__all__ = ["METADATA_FILES", "STAGES", "load_video_dataset"]
