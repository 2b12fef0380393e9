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

Loading is in `dataset_loading.py`, reading the videos in `video_reading.py`, and the cache (its keys, the pipeline
fingerprint, the atomic writes) in `prepared_cache.py`; the batches are made by `collator.py`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import datasets
import numpy as np
import torch
from diffusers.pipelines.wan.pipeline_wan import prompt_clean
from transformers.utils import logging

from .dataset_loading import check_columns, check_stage
from .prepared_cache import (
    CACHE_FORMAT_VERSION,
    cache_key,
    entry_of_another_stage,
    pipeline_fingerprint,
    prepare_into_cache,
)
from .video_reading import read_videos, video_files_digest


if TYPE_CHECKING:
    from ..pipelines import UniViGUPipeline


logger = logging.get_logger(__name__)

PREPARED_COLUMNS = ("video_latents", "prompt_embeds", "prompt_ids", "text_ids", "text_truncated")
"""Columns that [`prepare_dataset`] adds to the dataset."""


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
    check_stage(stage)
    if not isinstance(dataset, datasets.Dataset):
        raise TypeError(f"dataset must be a datasets.Dataset, got {type(dataset).__name__}")
    check_columns(
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
        "videos": video_files_digest(dataset[video_column], base_dir),
        "pipeline": pipeline_fingerprint(pipeline),
    }
    key = cache_key(settings)

    target = other_stage = None
    if cache_dir is not None:
        cache_dir = os.fspath(cache_dir)
        target = os.path.join(cache_dir, key)
        if os.path.isfile(os.path.join(target, "state.json")):
            logger.info(f"Loading the prepared dataset from the cache {target}")
            prepared = datasets.load_from_disk(target)
            _warn_truncated(prepared, max_text_length, stage)
            return prepared
        other_stage = entry_of_another_stage(cache_dir, settings)

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
            prepared = prepare_into_cache(dataset, function, map_kwargs, cache_dir, target, key, settings)
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
        settings = self.settings
        pixels = read_videos(
            self.pipeline,
            videos,
            indices,
            base_dir=self.base_dir,
            height=settings["height"],
            width=settings["width"],
            num_frames=settings["num_frames"],
        )
        latents: list[np.ndarray | None] = [None] * len(pixels)
        groups: dict[tuple[int, ...], list[int]] = {}
        for position, clip in enumerate(pixels):  # clips of one shape are encoded in one VAE call
            groups.setdefault(tuple(clip.shape), []).append(position)
        for positions in groups.values():
            encoded = self.pipeline.encode_video(torch.cat([pixels[p] for p in positions])).float().cpu()
            for position, clip_latents in zip(positions, encoded):
                latents[position] = clip_latents.numpy()
        return latents

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


def _strings(values: list, indices: list[int], column: str) -> list[str]:
    for value, index in zip(values, indices):
        if not isinstance(value, str):
            raise ValueError(f"row {index}: the {column!r} column must hold strings, got {value!r}"[:300])
    return list(values)


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


def _warn_truncated(dataset: datasets.Dataset, max_text_length: int, stage: str) -> None:
    count = count_truncated(dataset)
    if count:
        texts = "prompt" if stage == "recall" else "prompt or caption"
        logger.warning(
            f"{count} of {len(dataset)} examples have a {texts} longer than max_text_length={max_text_length} tokens "
            "and were truncated for the text stream (see the `text_truncated` column)"
        )


__all__ = ["PREPARED_COLUMNS", "count_truncated", "prepare_dataset"]
