"""Dataset preparation for Uni-ViGU training: load a (video, prompt, caption) dataset and precompute what the training
step needs (VAE latents, prompt embeddings, token ids), cached on disk.

The two training stages of the paper differ only in the text target of the text stream:

- `"recall"` (Knowledge Recall): the text target is the generation prompt itself;
- `"refine"` (Capability Refinement): the text target is the detailed caption.

Typical use:

```python
dataset, base_dir = load_video_dataset("path/to/videos", stage="refine")  # folder with metadata.jsonl + clips
prepared = prepare_dataset(pipeline, dataset, stage="refine", base_dir=base_dir, cache_dir="prepared_cache")
```
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import datasets
import numpy as np
import torch
from diffusers.pipelines.wan.pipeline_wan import prompt_clean
from transformers.utils import logging


if TYPE_CHECKING:
    from ..pipelines import UniViGUPipeline


logger = logging.get_logger(__name__)

STAGES = ("recall", "refine")
"""Training stages: `"recall"` trains the text stream on the prompt, `"refine"` on the detailed caption."""

METADATA_FILES = ("metadata.jsonl", "metadata.csv")
"""Metadata file names looked up, in this order, in a local dataset folder."""

PREPARED_COLUMNS = ("video_latents", "prompt_embeds", "prompt_ids", "text_ids", "text_truncated")
"""Columns that [`prepare_dataset`] adds to the dataset."""

CACHE_FORMAT_VERSION = 1
"""Part of every cache key; bumped when the prepared format changes so that old caches are not reused."""

_FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
_COLUMN_ROLES = {"video_column": "video", "prompt_column": "prompt", "caption_column": "caption"}
# Video files are decoded by an ffmpeg subprocess each, so a few threads overlap its start-up and decoding (measured
# in `benchmarks/data_preparation.py`, see docs/training.md).
_VIDEO_READERS = 4
_WEIGHT_SAMPLES = 256  # values sampled from every weight tensor for the pipeline fingerprint


# ----------------------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------------------
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
    _check_stage(stage)
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
    _check_columns(
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


def _check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")


def _check_columns(dataset: datasets.Dataset, *, stage: str, **columns: str) -> None:
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


# ----------------------------------------------------------------------------------------------------------------------
# Preparation
# ----------------------------------------------------------------------------------------------------------------------
def prepare_dataset(
    pipeline: UniViGUPipeline,
    dataset: datasets.Dataset,
    *,
    stage: str = "recall",
    base_dir: str | os.PathLike | None = None,
    video_column: str = "file_name",
    prompt_column: str = "prompt",
    caption_column: str = "caption",
    max_text_length: int | None = None,
    height: int | None = None,
    width: int | None = None,
    num_frames: int | None = None,
    max_sequence_length: int = 512,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 4,
    device: str | torch.device | None = None,
) -> datasets.Dataset:
    """
    Precomputes the training inputs of every example with the pipeline's frozen VAE and text encoder.

    Each video is read, resized/center-cropped and frame-sampled by [`UniViGUPipeline.preprocess_video`], then encoded
    by [`UniViGUPipeline.encode_video`] (normalised latents, posterior mode: deterministic). Each prompt is encoded by
    the pipeline's `encode_prompt` (diffusers' Wan encoding, no classifier-free guidance). Runs under
    `torch.no_grad()` with `Dataset.map(batched=True)`.

    The returned dataset keeps the original columns (they are light: paths and strings) and adds:

    - `video_latents` (`float32`, `(16, F', H', W')`, F' = (num_frames - 1) / 4 + 1, H' = height / 8, W' = width / 8):
      stored as a fixed-shape `Array4D` when `num_frames` is given, else as nested lists (the frame count can then
      differ between clips);
    - `prompt_embeds` (`float32` `Array2D`, `(n_tokens, text_dim)`): the prompt embedding trimmed to the prompt's
      real token count. Wan's encoding is exactly zero beyond that count, so padding back to `max_sequence_length`
      rows with zeros (the collator's job) reproduces `encode_prompt`'s output exactly (~50x less disk for Wan).
      `n_tokens` is the tokenizer's attention-mask count with Wan's settings (cleaned prompt, `max_length=
      max_sequence_length`, truncation), raised if needed to keep every non-zero row, so the trimming is lossless;
    - `prompt_ids` (`list[int32]`): the prompt's token ids for the text stream of generation samples (special tokens
      added, truncated to `max_text_length`, not padded; the same tokenization as the pipeline's text stream);
    - `text_ids` (`list[int32]`): the text target's ids, tokenized the same way: the prompt for `stage="recall"`, the
      caption for `stage="refine"`;
    - `text_truncated` (`bool`): whether the prompt's or the text target's ids were cut to `max_text_length`. When
      any example is truncated, one warning per call (a cache hit included) reports how many; [`count_truncated`]
      returns the count.

    No format is set (examples come back as Python lists); the collator converts them to tensors.

    Caching: with `cache_dir`, the prepared dataset is stored with `save_to_disk` under `cache_dir/<key>` and later
    calls with the same inputs load it with `load_from_disk` without running the VAE or the text encoder. The key is
    a hash of: the dataset's fingerprint and row count; the stage and column names; the resolved video size,
    `max_text_length` and `max_sequence_length`; `base_dir` and the path, size and modification time of every video
    file; and a fingerprint of the pipeline (the configs of the VAE and the text encoder, their dtypes and an exact
    sample of values from every weight tensor, the tokenizer's vocabulary and settings, the pipeline's config). The
    entry is written to a temporary folder inside `cache_dir` and moved into place with `os.replace`, so an
    interrupted preparation never leaves a partial entry. On a miss, an entry of the other stage whose inputs are
    otherwise the same lends its `video_latents` and `prompt_embeds` (they do not depend on the stage) and only the
    token columns are computed: Knowledge Recall and Capability Refinement on the same clips run the VAE once.
    Without `cache_dir`, the same key is given to `Dataset.map` as its fingerprint: a dataset backed by files (e.g.
    loaded by [`load_video_dataset`]) reuses `datasets`' own cache file next to its data, an in-memory dataset is
    recomputed on every call.

    Args:
        pipeline ([`UniViGUPipeline`]): supplies the VAE, the text encoder, the tokenizer and the default sizes.
        dataset (`datasets.Dataset`): one row per clip, e.g. from [`load_video_dataset`].
        stage (`str`, defaults to `"recall"`): one of [`STAGES`]; chooses the text target.
        base_dir (`str` or `os.PathLike`, *optional*): the folder relative video paths are resolved against (default:
            the working directory). Absolute paths in the column are used as they are.
        video_column, prompt_column, caption_column (`str`): the column names (`caption_column` is only read for
            `stage="refine"`). The video column holds paths (or, for a `datasets.Video` column, `{"path", "bytes"}`
            records).
        max_text_length (`int`, *optional*): the text-stream length in tokens (default: the transformer's
            `max_text_length`).
        height, width, num_frames (`int`, *optional*): the video size (defaults: the pipeline's `default_height`
            and `default_width`; for `num_frames`, as many frames of the form 4k+1 as each clip has, at most the
            pipeline's `default_num_frames`).
        max_sequence_length (`int`, defaults to 512): the prompt-encoder length (Wan: 512).
        cache_dir (`str` or `os.PathLike`, *optional*): where prepared datasets are cached (see above).
        batch_size (`int`, defaults to 4): examples per `Dataset.map` batch, i.e. per VAE/text-encoder call.
        device (`str` or `torch.device`, *optional*): where to run the VAE and the text encoder. By default the
            pipeline's execution device is used and the modules are not moved; when given, the VAE and the text
            encoder are moved there for the preparation and moved back afterwards.

    Returns:
        `datasets.Dataset`: the dataset with the columns above.

    Raises:
        `ValueError`: for an unknown `stage`, a missing column, an empty dataset, invalid sizes or lengths, a
            non-string prompt or caption, token ids outside the transformer's text vocabulary, or a missing or
            unreadable video (the message names the file and the row index; missing files are found before any
            encoding, since the cache key stats every file).
        `TypeError`: if `dataset` is not a `datasets.Dataset`.
    """
    _check_stage(stage)
    if not isinstance(dataset, datasets.Dataset):
        raise TypeError(f"dataset must be a datasets.Dataset, got {type(dataset).__name__}")
    _check_columns(
        dataset, stage=stage, video_column=video_column, prompt_column=prompt_column, caption_column=caption_column
    )
    if len(dataset) == 0:
        raise ValueError("dataset is empty")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(max_sequence_length, int) or isinstance(max_sequence_length, bool) or max_sequence_length < 1:
        raise ValueError(f"max_sequence_length must be a positive integer, got {max_sequence_length!r}")
    height, width, _ = pipeline.resolve_size(height, width, 1 if num_frames is None else num_frames)
    max_text_length = pipeline.resolve_text_length(max_text_length, for_training=True)
    base_dir = None if base_dir is None else os.path.abspath(os.fspath(base_dir))
    target_column = prompt_column if stage == "recall" else caption_column

    video_feature = dataset.features[video_column]
    if isinstance(video_feature, datasets.Video) and video_feature.decode:
        dataset = dataset.cast_column(video_column, datasets.Video(decode=False))

    settings = {
        "format_version": CACHE_FORMAT_VERSION,
        "dataset_fingerprint": dataset._fingerprint,
        "num_rows": len(dataset),
        "stage": stage,
        "columns": {"video": video_column, "prompt": prompt_column, "caption": caption_column},
        "height": height,
        "width": width,
        "num_frames": num_frames,
        "max_text_length": max_text_length,
        "max_sequence_length": max_sequence_length,
        "base_dir": base_dir,
        "videos": _video_files_digest(dataset[video_column], base_dir),
        "pipeline": pipeline_fingerprint(pipeline),
    }
    key = _cache_key(settings)

    target = other_stage = None
    if cache_dir is not None:
        cache_dir = os.fspath(cache_dir)
        target = os.path.join(cache_dir, key)
        if os.path.isfile(os.path.join(target, "state.json")):
            logger.info(f"Loading the prepared dataset from the cache {target}")
            prepared = datasets.load_from_disk(target)
            _warn_truncated(prepared, max_text_length, stage)
            return prepared
        other_stage = _entry_of_another_stage(cache_dir, settings)

    features = datasets.Features(dict(dataset.features))
    text_dim = _text_dim(pipeline)
    if num_frames is None:
        features["video_latents"] = datasets.List(
            datasets.List(datasets.List(datasets.List(datasets.Value("float32"))))
        )
    else:
        scale_t, scale_s = pipeline.vae_scale_factor_temporal, pipeline.vae_scale_factor_spatial
        latent_shape = (
            pipeline.vae.config.z_dim,
            (num_frames - 1) // scale_t + 1,
            height // scale_s,
            width // scale_s,
        )
        features["video_latents"] = datasets.Array4D(shape=latent_shape, dtype="float32")
    features["prompt_embeds"] = datasets.Array2D(shape=(None, text_dim), dtype="float32")
    features["prompt_ids"] = datasets.List(datasets.Value("int32"))
    features["text_ids"] = datasets.List(datasets.Value("int32"))
    features["text_truncated"] = datasets.Value("bool")

    function = (_BatchPreparer if other_stage is None else _TextTargetPreparer)(
        pipeline,
        stage=stage,
        base_dir=base_dir,
        video_column=video_column,
        prompt_column=prompt_column,
        target_column=target_column,
        height=height,
        width=width,
        num_frames=num_frames,
        max_text_length=max_text_length,
        max_sequence_length=max_sequence_length,
        device=torch.device(device) if device is not None else pipeline._execution_device,
    )
    map_kwargs = dict(
        batched=True,
        batch_size=batch_size,
        with_indices=True,
        features=features,
        new_fingerprint=key,
        desc="Preparing videos and prompts",
    )
    if other_stage is not None:
        logger.info(f"Reusing the video latents and prompt embeddings of the cache entry {other_stage}")
        dataset = datasets.load_from_disk(other_stage)
        map_kwargs["desc"] = "Preparing text targets"
    with torch.no_grad(), _modules_on(pipeline, device):
        if target is None:
            prepared = dataset.map(function, **map_kwargs)
        else:
            prepared = _prepare_into_cache(dataset, function, map_kwargs, cache_dir, target, key, settings)
    _warn_truncated(prepared, max_text_length, stage)
    return prepared


def count_truncated(dataset: datasets.Dataset) -> int:
    """
    Returns how many examples of a dataset prepared by [`prepare_dataset`] had their prompt or text target cut to
    `max_text_length` tokens (the `text_truncated` column).

    Raises:
        `ValueError`: if the dataset has no `text_truncated` column.
    """
    if "text_truncated" not in dataset.column_names:
        raise ValueError("dataset has no `text_truncated` column: it was not prepared by prepare_dataset")
    return int(sum(bool(flag) for flag in dataset.with_format(None)["text_truncated"]))


def pipeline_fingerprint(pipeline: UniViGUPipeline) -> str:
    """
    A cheap fingerprint of what determines the prepared data: the configs, dtypes, parameter names/shapes and an
    exact strided sample of values of every weight tensor of the VAE and the text encoder, the tokenizer (class,
    vocabulary, special tokens, padding/truncation side) and the pipeline's config. Reading it costs a few hundred
    small tensor reads, not a pass over the weights; it changes when weights are retrained, merged or swapped (an edit
    of a few isolated values can go unnoticed). Independent of the device the modules are on.

    Returns:
        `str`: a hex digest.
    """
    digest = hashlib.sha256()
    payload = {
        "pipeline_config": {k: v for k, v in dict(pipeline.config).items() if not k.startswith("_")},
        "vae": _module_fingerprint(pipeline.vae),
        "text_encoder": _module_fingerprint(pipeline.text_encoder),
        "tokenizer": _tokenizer_fingerprint(pipeline.tokenizer),
        "vae_tiling": bool(getattr(pipeline.vae, "use_tiling", False)),
        "patch_size": list(pipeline.transformer.config.patch_size),
        "text_vocab_size": pipeline.transformer.config.text_vocab_size,
    }
    digest.update(json.dumps(payload, sort_keys=True, default=str).encode())
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------------
class _BatchPreparer:
    """The `Dataset.map` function (a class, so that `datasets` never tries to hash the pipeline's weights)."""

    def __init__(self, pipeline, *, stage, base_dir, video_column, prompt_column, target_column, **settings):
        self.pipeline = pipeline
        self.stage = stage
        self.base_dir = base_dir
        self.video_column = video_column
        self.prompt_column = prompt_column
        self.target_column = target_column
        self.settings = settings

    def __call__(self, batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        pipeline, settings = self.pipeline, self.settings
        prompts = _strings(batch[self.prompt_column], indices, self.prompt_column)
        latents = self._encode_videos(batch[self.video_column], indices)

        embeds, _ = pipeline.encode_prompt(
            prompt=prompts,
            negative_prompt=None,
            do_classifier_free_guidance=False,
            num_videos_per_prompt=1,
            max_sequence_length=settings["max_sequence_length"],
            device=settings["device"],
        )
        embeds = embeds.float().cpu()
        mask = pipeline.tokenizer(
            [prompt_clean(prompt) for prompt in prompts],
            padding="max_length",
            max_length=settings["max_sequence_length"],
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
        )["attention_mask"]
        nonzero_rows = embeds.abs().amax(dim=-1) > 0
        prompt_embeds = []
        for row, row_mask, row_nonzero in zip(embeds, mask, nonzero_rows):
            used = torch.nonzero(row_nonzero).flatten()
            length = max(int(sum(row_mask)), int(used[-1]) + 1 if len(used) else 0)
            prompt_embeds.append(row[:length].numpy())
        text_columns = self._text_columns(prompts, batch, indices)
        return {"video_latents": latents, "prompt_embeds": prompt_embeds, **text_columns}

    def _text_columns(self, prompts: list[str], batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        prompt_ids, prompt_cut = self._tokenize(prompts, indices, self.prompt_column)
        if self.stage == "recall":
            text_ids, text_cut = prompt_ids, prompt_cut
        else:
            targets = _strings(batch[self.target_column], indices, "caption")
            text_ids, text_cut = self._tokenize(targets, indices, self.target_column)
        return {
            "prompt_ids": prompt_ids,
            "text_ids": text_ids,
            "text_truncated": [a or b for a, b in zip(prompt_cut, text_cut)],
        }

    def _encode_videos(self, videos: list, indices: list[int]) -> list[np.ndarray]:
        with ThreadPoolExecutor(max_workers=min(_VIDEO_READERS, max(1, len(videos)))) as readers:
            pixels = list(readers.map(self._read_video, videos, indices))
        latents: list[np.ndarray | None] = [None] * len(pixels)
        groups: dict[tuple[int, ...], list[int]] = {}
        for position, clip in enumerate(pixels):  # clips of one shape are encoded in one VAE call
            groups.setdefault(tuple(clip.shape), []).append(position)
        for positions in groups.values():
            encoded = self.pipeline.encode_video(torch.cat([pixels[p] for p in positions])).float().cpu()
            for position, clip_latents in zip(positions, encoded):
                latents[position] = clip_latents.numpy()
        return latents

    def _read_video(self, value: Any, index: int) -> torch.Tensor:
        settings = self.settings
        with _video_path(value, self.base_dir, index) as path:
            try:
                return self.pipeline.preprocess_video(
                    path, height=settings["height"], width=settings["width"], num_frames=settings["num_frames"]
                )
            except (FileNotFoundError, ValueError) as error:
                raise ValueError(f"row {index}: could not prepare video {path!r}: {error}") from None

    def _tokenize(self, texts: list[str], indices: list[int], column: str) -> tuple[list[list[int]], list[bool]]:
        tokenizer, length = self.pipeline.tokenizer, self.settings["max_text_length"]
        ids = tokenizer(texts, truncation=True, max_length=length, add_special_tokens=True)["input_ids"]
        full = tokenizer(texts, truncation=False, add_special_tokens=True, verbose=False)["input_ids"]
        vocab = self.pipeline.transformer.config.text_vocab_size
        for row, index in zip(ids, indices):
            if row and max(row) >= vocab:
                raise ValueError(
                    f"row {index}: the {column!r} text has token id {max(row)} >= the transformer's text_vocab_size="
                    f"{vocab}: the tokenizer and the transformer do not match"
                )
        return ids, [len(f) > len(i) for f, i in zip(full, ids)]


class _TextTargetPreparer(_BatchPreparer):
    """Maps a prepared entry of another stage: its video latents and prompt embeddings do not depend on the stage, so
    only the token columns are computed again (no VAE or text-encoder call)."""

    def __call__(self, batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        return self._text_columns(_strings(batch[self.prompt_column], indices, self.prompt_column), batch, indices)


def _entry_of_another_stage(cache_dir: str, settings: dict) -> str | None:
    """A finished cache entry whose settings equal `settings` in everything but the stage, if there is one."""
    for stage in STAGES:
        if stage == settings["stage"]:
            continue
        entry = os.path.join(cache_dir, _cache_key({**settings, "stage": stage}))
        if os.path.isfile(os.path.join(entry, "state.json")):
            return entry
    return None


def _cache_key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _strings(values: list, indices: list[int], column: str) -> list[str]:
    for value, index in zip(values, indices):
        if not isinstance(value, str):
            raise ValueError(f"row {index}: the {column!r} column must hold strings, got {value!r}"[:300])
    return list(values)


def _resolve_video(value: Any, base_dir: str | None) -> str | None:
    """The file path of a video-column value (`None` for an embedded `{"bytes": ...}` record without a path)."""
    if isinstance(value, dict):
        if value.get("bytes") is not None:
            return None
        value = value.get("path")
    if not isinstance(value, (str, os.PathLike)):
        return None
    path = os.path.expanduser(os.fspath(value))
    if base_dir is not None and not os.path.isabs(path):
        path = os.path.join(base_dir, path)
    return path


@contextlib.contextmanager
def _video_path(value: Any, base_dir: str | None, index: int) -> Iterator[str]:
    """Yields a readable path for a video-column value; embedded bytes go through a temporary file."""
    path = _resolve_video(value, base_dir)
    if path is not None:
        yield path
        return
    if isinstance(value, dict) and value.get("bytes") is not None:
        suffix = os.path.splitext(value.get("path") or "")[1] or ".mp4"
        handle, temporary = tempfile.mkstemp(suffix=suffix)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(value["bytes"])
            yield temporary
        finally:
            os.remove(temporary)
        return
    raise ValueError(f"row {index}: the video column must hold file paths, got {value!r}"[:300])


def _video_files_digest(values, base_dir: str | None) -> str:
    """Hash of every referenced video file's path, size and modification time (changing a clip changes the key)."""
    digest = hashlib.sha256()
    for index, value in enumerate(values):
        path = _resolve_video(value, base_dir)
        if path is None:
            digest.update(f"{index}:embedded\n".encode())
            continue
        try:
            stat = os.stat(path)
        except OSError:
            raise ValueError(f"row {index}: video file not found: {path!r}") from None
        digest.update(f"{index}:{os.path.abspath(path)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _module_fingerprint(module: torch.nn.Module | None) -> dict | None:
    if module is None:
        return None
    config = getattr(module, "config", None)
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    config = {
        k: v
        for k, v in dict(config or {}).items()
        # Save/load metadata only (tensor dtypes are hashed below with the weights).
        if not k.startswith("_")
        and k not in ("transformers_version", "name_or_path", "architectures", "dtype", "torch_dtype")
    }
    digest = hashlib.sha256()
    samples = []
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}\n".encode())
        if tensor.device.type == "meta" or tensor.numel() == 0:
            continue
        flat = tensor.detach().reshape(-1)
        samples.append(flat[:: max(1, flat.numel() // _WEIGHT_SAMPLES)][:_WEIGHT_SAMPLES].float().cpu())
    if samples:
        digest.update(torch.cat(samples).numpy().tobytes())
    return {"class": type(module).__name__, "config": config, "weights": digest.hexdigest()}


def _tokenizer_fingerprint(tokenizer) -> dict:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # Truncation/padding are call-time state that a saved tokenizer may carry from its last call (e.g. after
        # encode_prompt): they do not change the ids prepare_dataset produces, which sets both explicitly.
        state = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")}
        vocabulary = json.dumps(state, sort_keys=True)
    else:
        vocabulary = json.dumps(sorted(tokenizer.get_vocab().items()))
    return {
        "class": type(tokenizer).__name__,
        "size": len(tokenizer),
        "vocabulary": hashlib.sha256(vocabulary.encode()).hexdigest(),
        "special_tokens": {k: str(v) for k, v in tokenizer.special_tokens_map.items()},
        "padding_side": getattr(tokenizer, "padding_side", None),
        "truncation_side": getattr(tokenizer, "truncation_side", None),
    }


def _text_dim(pipeline) -> int:
    config = getattr(pipeline.text_encoder, "config", None)
    for name in ("d_model", "hidden_size"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return pipeline.transformer.config.text_dim


@contextlib.contextmanager
def _modules_on(pipeline, device: str | torch.device | None) -> Iterator[None]:
    """Moves the VAE and the text encoder to `device` for the duration (nothing when `device` is None)."""
    if device is None:
        yield
        return
    modules = [m for m in (pipeline.vae, pipeline.text_encoder) if isinstance(m, torch.nn.Module)]
    original = [next(m.parameters()).device if any(True for _ in m.parameters()) else None for m in modules]
    for module in modules:
        module.to(device)
    try:
        yield
    finally:
        for module, place in zip(modules, original):
            if place is not None:
                module.to(place)


def _prepare_into_cache(dataset, function, map_kwargs, cache_dir, target, key, settings) -> datasets.Dataset:
    """Runs the map into a temporary folder of `cache_dir`, then moves the saved dataset to `target` atomically."""
    os.makedirs(cache_dir, exist_ok=True)
    temporary = tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=cache_dir)
    try:
        mapped = dataset.map(function, cache_file_name=os.path.join(temporary, "map.arrow"), **map_kwargs)
        staged = os.path.join(temporary, "dataset")
        mapped.save_to_disk(staged)
        del mapped
        with open(os.path.join(staged, "univigu_prepare.json"), "w", encoding="utf-8") as handle:
            json.dump(settings, handle, indent=2, sort_keys=True, default=str)
        try:
            os.replace(staged, target)
        except OSError:
            if not os.path.isfile(os.path.join(target, "state.json")):  # not a concurrent writer's finished entry
                raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return datasets.load_from_disk(target)


def _warn_truncated(dataset: datasets.Dataset, max_text_length: int, stage: str) -> None:
    count = count_truncated(dataset)
    if count:
        texts = "prompt" if stage == "recall" else "prompt or caption"
        logger.warning(
            f"{count} of {len(dataset)} examples have a {texts} longer than max_text_length={max_text_length} tokens "
            "and were truncated for the text stream (see the `text_truncated` column)"
        )


__all__ = ["STAGES", "count_truncated", "load_video_dataset", "pipeline_fingerprint", "prepare_dataset"]
