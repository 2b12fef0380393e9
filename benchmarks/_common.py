"""Shared pieces of the benchmark scripts: arguments, side-by-side timing, the model sizes and their builders."""

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel

from univigu_hf import UniViGUModel, UniViGUPipeline
from univigu_hf.testing import build_tiny_text_encoder, build_tiny_tokenizer, build_tiny_vae


# diffusers' Wan-AI/Wan2.1-T2V-1.3B-Diffusers transformer/config.json
WAN21_T2V_1_3B = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=12,
    attention_head_dim=128,
    in_channels=16,
    out_channels=16,
    text_dim=4096,
    freq_dim=256,
    ffn_dim=8960,
    num_layers=30,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    eps=1e-6,
    rope_max_seq_len=1024,
)
# A mid-size Wan-shaped transformer: runs a 4k-token forward in about a second on 2 CPU cores. Prompts are Wan's
# (512 x 4096 umT5 embeddings); the caption vocabulary keeps the text head's share of a caption step near 1.3B's.
MID_SIZE = {**WAN21_T2V_1_3B, "num_attention_heads": 4, "attention_head_dim": 64, "ffn_dim": 1024, "num_layers": 4}
MID_SIZE_TEXT_VOCAB = 4096
# `--quick`: the same code on a model small enough that every script ends in seconds.
QUICK_SIZE = {**MID_SIZE, "num_attention_heads": 2, "attention_head_dim": 32, "text_dim": 64, "ffn_dim": 128}
QUICK_SIZE["num_layers"] = 2
QUICK_TEXT_VOCAB = 256
PROMPT_LENGTH = 512  # Wan's max_sequence_length
LATENT_FRAMES = 4  # 13 video frames


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes: `--device`, `--quick`, `--output`."""
    result = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    result.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    result.add_argument("--quick", action="store_true", help="a seconds-long smoke run (tiny sizes, few repeats)")
    result.add_argument("--output", default=None, help="JSON file to write (folders are created)")
    return result


def synchronize(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def interleaved_samples(
    functions: dict[str, Callable], repeats: int, device: str, warmup: int = 1, clock: str = "wall"
) -> dict[str, list[float]]:
    """
    Time of each function, measured side by side: after `warmup` calls of each, the functions run in turn `repeats`
    times (A, B, C, A, B, C, ...), so a change in machine load affects all of them alike. `clock="wall"` is wall time;
    `"cpu"` is the CPU time of this process (all its threads), which other processes on a shared CPU machine disturb
    far less (it does not count time spent waiting for a GPU: use it on CPU only).

    Returns:
        `dict[str, list[float]]`: every sample (seconds per call), by name.
    """
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {sorted(CLOCKS)}, got {clock!r}")
    timer = CLOCKS[clock]
    for function in functions.values():
        for _ in range(warmup):
            function()
    samples = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            synchronize(device)
            start = timer()
            function()
            synchronize(device)
            samples[name].append(timer() - start)
    return samples


class CallCounter:
    """Counts the forward calls of `module` (a forward hook) while in a `with` block."""

    def __init__(self, module):
        self.module, self.calls = module, 0

    def __enter__(self):
        self.handle = self.module.register_forward_hook(lambda *_: setattr(self, "calls", self.calls + 1))
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def compare_seconds(functions: dict[str, Callable], repeats: int, device: str, warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, measured side by side ([`interleaved_samples`])."""
    samples = interleaved_samples(functions, repeats, device, warmup)
    return {name: statistics.median(values) for name, values in samples.items()}


def latent_shape(video_tokens: int, frames: int = LATENT_FRAMES) -> tuple[int, int, int]:
    """Latent `(frames, height, width)` with `video_tokens` patches of 1x2x2, as square as possible."""
    per_frame = video_tokens // frames
    if per_frame * frames != video_tokens:
        raise ValueError(f"video_tokens must be a multiple of {frames}, got {video_tokens}")
    rows = 2 ** int(math.log2(math.isqrt(per_frame)))
    while per_frame % rows:
        rows //= 2
    return frames, 2 * rows, 2 * (per_frame // rows)


def pixel_size(video_tokens: int, vae_factor: int = 8) -> dict:
    """`height`, `width`, `num_frames` of a video that a Wan VAE (4x temporal, 8x spatial) maps to `video_tokens`."""
    frames, height, width = latent_shape(video_tokens)
    return {"num_frames": 4 * (frames - 1) + 1, "height": height * vae_factor, "width": width * vae_factor}


def build_models(config: dict, text_vocab_size: int, device: str, seed: int = 0, **kwargs):
    """A random fp32 `WanTransformer3DModel` and the `UniViGUModel` grown from it (same video weights)."""
    torch.manual_seed(seed)
    wan = WanTransformer3DModel(**config).eval()
    model = UniViGUModel.from_wan(wan, text_vocab_size=text_vocab_size, **kwargs)
    _randomize_text_head(model, seed)
    return wan.to(device), model.to(device).eval()


def build_pipelines(config: dict, text_vocab_size: int, device: str, seed: int = 0, **kwargs):
    """
    A `WanPipeline` with a transformer of `config` (the tiny test VAE, prompt encoder and tokenizer) and the
    `UniViGUPipeline` grown from it; `kwargs` go to `UniViGUPipeline.from_wan`.
    """
    config = {**config, "text_dim": 32}  # the tiny test encoder's width
    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(seed)
    wan = WanPipeline(
        tokenizer=tokenizer,
        text_encoder=build_tiny_text_encoder(seed),
        vae=build_tiny_vae(seed),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        transformer=WanTransformer3DModel(**config).eval(),
    )
    unified = UniViGUPipeline.from_wan(wan, text_vocab_size=text_vocab_size, **kwargs)
    _randomize_text_head(unified.transformer, seed)
    for pipe in (wan, unified):
        pipe.set_progress_bar_config(disable=True)
        pipe.to(device)
    return wan, unified


def _randomize_text_head(model: UniViGUModel, seed: int) -> None:
    # `from_wan` zero-initialises the text head (uniform logits); a random one makes captions depend on the video.
    generator = torch.Generator().manual_seed(seed + 1)
    head = model.text_proj_out
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=generator) * head.in_features**-0.5)
        head.bias.zero_()


def environment(device: str) -> dict:
    """What the numbers were measured on."""
    info = {"device": device, "torch": torch.__version__, "threads": torch.get_num_threads()}
    if str(device).startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    return info


def caption_quality(captions: list[str], baseline: list[str], clips: list, references: list) -> dict:
    """
    What the caption benchmarks report for one mode on shapes-world clips: the exact attribute accuracy
    (`shapes.scoring.score_captions`), the share of captions identical to a baseline mode's, and three examples.

    Returns:
        `dict` with `mean_accuracy`, `accuracy` (per attribute), `same_as_baseline` and `examples`, rounded.
    """
    from univigu_hf.shapes.scoring import score_captions

    scores = score_captions(captions, references)
    return {
        "mean_accuracy": round(scores["mean_accuracy"], 4),
        "accuracy": {key: round(value, 4) for key, value in scores["accuracy"].items()},
        "same_as_baseline": round(sum(a == b for a, b in zip(captions, baseline)) / len(clips), 4),
        "examples": [{"reference": clip.caption, "generated": text} for clip, text in zip(clips[:3], captions)],
    }
