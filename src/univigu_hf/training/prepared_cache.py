"""The cache of prepared training data: the key of an entry (the preparation's settings and a fingerprint of the
pipeline), the reuse of another stage's entry, and the atomic write of a new entry into the cache folder."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from typing import TYPE_CHECKING

import datasets
import torch

from .dataset_loading import STAGES


if TYPE_CHECKING:
    from ..pipelines import UniViGUPipeline


CACHE_FORMAT_VERSION = 1
"""Part of every cache key; bumped when the prepared format changes so that old caches are not reused."""

_WEIGHT_SAMPLES = 256  # values sampled from every weight tensor for the pipeline fingerprint


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


def entry_of_another_stage(cache_dir: str, settings: dict) -> str | None:
    """A finished cache entry whose settings equal `settings` in everything but the stage, if there is one."""
    for stage in STAGES:
        if stage == settings["stage"]:
            continue
        entry = os.path.join(cache_dir, cache_key({**settings, "stage": stage}))
        if os.path.isfile(os.path.join(entry, "state.json")):
            return entry
    return None


def cache_key(settings: dict) -> str:
    """The name of the cache entry of a preparation's settings (a hash of them)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:32]


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


def prepare_into_cache(dataset, function, map_kwargs, cache_dir, target, key, settings) -> datasets.Dataset:
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


__all__ = ["CACHE_FORMAT_VERSION", "pipeline_fingerprint"]
