"""Where does a shapes-world pipeline lose shape? A latent probe that splits text-to-video into generation and decoding.

    python research/probe_latents.py --output research/shapes_probe.json

The detectors (`univigu_hf.shapes.scoring`) read decoded videos, so a wrong shape in text-to-video can come from the
transformer (it generated latents of the wrong shape) or from the VAE decoder (it rendered right latents as a blob).
This script trains a small convolutional probe on the VAE's posterior means of world clips of *every* attribute
combination (so it cannot lean on which shapes go with which colors, sizes and directions in training) and reports
its shape accuracy, per size, on:

- `real_held_out`: posterior means of clips of the held-out prompts (unseen seed): how much shape the encoder keeps;
- `real_held_out_training_fit`: the same clips read by a probe fitted on clips of the *training* combinations only
  (same seed and count), the data every model stage is restricted to: how far a dedicated reader of these latents
  generalises shape to the held-out combinations (the gap to `real_held_out` is the combination shortcut);
- `generated_held_out` / `generated_seen`: latents that `pipe.generate_video(..., output_type="latent")` produces for
  the held-out prompts and for training prompts: how often the transformer generates the prompted shape;
- `decoded_held_out` / `decoded_seen`: the detectors on the same samples decoded, as in `make eval-demo`;
- `video_tokens_held_out`: a probe per transformer layer on the video tokens of clean held-out clips (timestep 0, the
  captioning input; the token grid `(dim, F, H/2, W/2)` for patch 1x2x2): how much shape the video stream hands to
  the caption tokens that attend to it.

The probe is a measuring instrument trained on clips no model saw (seed 2000, all combinations); it is not part of any
model. Its accuracy on generated latents is only meaningful as far as they look like encoded clips, hence the real
round-trip numbers alongside.
"""

import argparse
import json
import os
import random
import sys
import time

import numpy as np
import torch
from torch import nn

import univigu_hf
from univigu_hf import UniViGUPipeline, shapes
from univigu_hf.shapes.scoring import detect_attributes, parse_caption


PROBE_SEED = 2000  # probe training clips: a seed no training stage uses (training data: 0, VAE: 1000)
EVAL_SEED = 424242  # the held-out clips of `make eval-demo`
SHAPES = shapes.ATTRIBUTE_VALUES["shape"]


def clips_to_video(clips) -> torch.Tensor:
    """World clips as the VAE's input `(B, 3, F, H, W)` in [-1, 1]."""
    return torch.from_numpy(np.stack([clip.frames for clip in clips])).permute(0, 4, 1, 2, 3).float() * 2 - 1


def shape_labels(clips) -> torch.Tensor:
    """The index in `SHAPES` of each clip's shape."""
    return torch.tensor([SHAPES.index(clip.attributes.shape) for clip in clips])


@torch.no_grad()
def posterior_means(vae, clips, batch_size: int = 64) -> torch.Tensor:
    """The (unnormalised) posterior means of `clips`."""
    chunks = [clips_to_video(clips[i : i + batch_size]) for i in range(0, len(clips), batch_size)]
    return torch.cat([vae.encode(chunk).latent_dist.mode() for chunk in chunks]).float()


class ShapeProbe(nn.Module):
    """Two 3x3 convolutions per latent frame, a max over space and time, a linear layer: translation invariant, so it
    reads the shape wherever it is. Latents are standardised per channel with the training set's statistics."""

    def __init__(self, channels: int, mean: torch.Tensor, std: torch.Tensor, width: int = 64):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.net = nn.Sequential(
            nn.Conv3d(channels, width, (1, 3, 3), padding=(0, 1, 1)),
            nn.GELU(),
            nn.Conv3d(width, width, (1, 3, 3), padding=(0, 1, 1)),
            nn.GELU(),
            nn.AdaptiveMaxPool3d(1),
            nn.Flatten(),
            nn.Linear(width, len(SHAPES)),
        )

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.net((latents - self.mean) / self.std)


def train_shape_probe(latents: torch.Tensor, labels: torch.Tensor, epochs: int, seed: int) -> ShapeProbe:
    """Fits a [`ShapeProbe`] to `(latents, labels)` with AdamW (batch 64)."""
    if not isinstance(latents, torch.Tensor) or latents.ndim != 5:
        raise ValueError(f"latents must be a (B, C, F, H, W) tensor, got {getattr(latents, 'shape', type(latents))}")
    if not isinstance(labels, torch.Tensor) or labels.shape != (len(latents),):
        raise ValueError(
            f"labels must be a ({len(latents)},) tensor of shape indices, got {getattr(labels, 'shape', labels)!r}"
        )
    if labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) < len(SHAPES):
        raise ValueError(
            f"labels must be shape indices in [0, {len(SHAPES)}) ({SHAPES}), got {labels.unique().tolist()}"
        )
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    torch.manual_seed(seed)
    mean = latents.mean(dim=(0, 2, 3, 4), keepdim=True)
    std = latents.std(dim=(0, 2, 3, 4), keepdim=True).clamp_min(1e-6)
    probe = ShapeProbe(latents.shape[1], mean, std)
    optimizer = torch.optim.AdamW(probe.parameters(), lr=2e-3, weight_decay=1e-2)
    for _ in range(epochs):
        order = torch.randperm(len(latents))
        for start in range(0, len(latents), 64):
            index = order[start : start + 64]
            loss = nn.functional.cross_entropy(probe(latents[index]), labels[index])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    return probe.eval()


def normalise(pipe, latents: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """Posterior means as the transformer sees them (standardised with the VAE's `latents_mean`/`latents_std` when
    the pipeline has `normalize_latents`, as `output_type="latent"` returns them); `inverse=True` undoes it."""
    if not pipe.config.normalize_latents:
        return latents
    shape = (1, -1, 1, 1, 1)
    mean = torch.tensor(pipe.vae.config.latents_mean, dtype=latents.dtype).view(shape)
    std = torch.tensor(pipe.vae.config.latents_std, dtype=latents.dtype).view(shape)
    return latents * std + mean if inverse else (latents - mean) / std


@torch.no_grad()
def video_token_features(pipe, latents: torch.Tensor, batch_size: int = 64) -> dict[str, torch.Tensor]:
    """The video tokens entering the first transformer block (`embedding`) and leaving every block (`block_i`) for
    clean `latents` at timestep 0, each as a grid `(B, dim, F', H', W')`."""
    transformer = pipe.transformer
    patch = transformer.config.patch_size
    grid = [size // step for size, step in zip(latents.shape[2:], patch)]
    collected: dict[str, list[torch.Tensor]] = {}

    def keep(name, hidden):
        collected.setdefault(name, []).append(hidden.float().transpose(1, 2).reshape(len(hidden), -1, *grid))

    handles = [transformer.blocks[0].register_forward_pre_hook(lambda module, args: keep("embedding", args[0]))]
    for index, block in enumerate(transformer.blocks):
        handles.append(
            block.register_forward_hook(lambda module, args, output, name=f"block_{index}": keep(name, output[0]))
        )
    try:
        inputs = normalise(pipe, latents)
        for start in range(0, len(inputs), batch_size):
            chunk = inputs[start : start + batch_size].to(transformer.dtype)
            transformer(video_latents=chunk, video_timestep=torch.zeros(len(chunk)))
    finally:
        for handle in handles:
            handle.remove()
    return {name: torch.cat(parts) for name, parts in collected.items()}


def accuracy_by_size(correct, sizes) -> dict:
    correct, sizes = np.asarray(correct, dtype=bool), np.asarray(sizes)
    report = {"all": float(correct.mean()), "num_samples": int(correct.size)}
    for size in shapes.ATTRIBUTE_VALUES["size"]:
        if (sizes == size).any():
            report[size] = float(correct[sizes == size].mean())
    return report


@torch.no_grad()
def generated_readings(pipe, probe, prompts, batch_size: int, seed: int, steps: int | None) -> tuple[dict, dict]:
    """The probe on generated latents and the detectors on the same samples decoded."""
    wanted = [parse_caption(prompt) for prompt in prompts]
    probe_right, detector_right = [], []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        generators = [torch.Generator().manual_seed(seed + start + i) for i in range(len(chunk))]
        normalised = pipe.generate_video(chunk, num_inference_steps=steps, generator=generators, output_type="latent")
        latents = normalise(pipe, normalised.frames.float(), inverse=True)
        predicted = probe(latents).argmax(dim=1).tolist()
        frames = pipe.video_processor.postprocess_video(pipe.vae.decode(latents).sample, output_type="np")
        for i, (index, video) in enumerate(zip(predicted, frames)):
            want = wanted[start + i]["shape"]
            probe_right.append(SHAPES[index] == want)
            detector_right.append(detect_attributes(video)["shape"] == want)
    sizes = [attributes["size"] for attributes in wanted]
    return accuracy_by_size(probe_right, sizes), accuracy_by_size(detector_right, sizes)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=univigu_hf.DEFAULT_MODEL)
    parser.add_argument("--output", default=None, help="Where to write the JSON report (default: print only).")
    parser.add_argument("--probe_clips", type=int, default=3000, help="Clips of every combination to fit the probe.")
    parser.add_argument("--probe_epochs", type=int, default=60)
    parser.add_argument("--test_clips", type=int, default=240, help="Held-out clips for the encoder's reading.")
    parser.add_argument("--samples_per_prompt", type=int, default=10, help="Per held-out prompt (and per seen one).")
    parser.add_argument("--seen_prompts", type=int, default=12, help="Training prompts to generate (random, seeded).")
    parser.add_argument("--steps", type=int, default=None, help="Denoising steps (default: the pipeline's).")
    parser.add_argument("--batch_size", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("probe_clips", "probe_epochs", "test_clips", "samples_per_prompt", "seen_prompts", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be a positive integer (or left out for the pipeline's default), got {args.steps}")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    started = time.perf_counter()
    pipe = UniViGUPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    probe_clips = list(shapes.generate_clips(args.probe_clips, seed=PROBE_SEED, split="all"))
    labels = shape_labels(probe_clips)
    probe_latents = posterior_means(pipe.vae, probe_clips)
    probe = train_shape_probe(probe_latents, labels, args.probe_epochs, args.seed)

    test_clips = list(shapes.generate_clips(args.test_clips, seed=EVAL_SEED, split="held_out"))
    test_latents = posterior_means(pipe.vae, test_clips)
    test_sizes = [clip.attributes.size for clip in test_clips]

    def read_test_clips(fitted, features) -> dict:
        with torch.no_grad():
            predicted = fitted(features).argmax(dim=1).tolist()
        return accuracy_by_size(
            [SHAPES[i] == clip.attributes.shape for i, clip in zip(predicted, test_clips)], test_sizes
        )

    real = read_test_clips(probe, test_latents)
    training_clips = list(shapes.generate_clips(args.probe_clips, seed=PROBE_SEED, split="train"))
    training_probe = train_shape_probe(
        posterior_means(pipe.vae, training_clips),
        shape_labels(training_clips),
        args.probe_epochs,
        args.seed,
    )
    real_training_fit = read_test_clips(training_probe, test_latents)
    seen = [prompt for prompt in shapes.ALL_PROMPTS if prompt not in shapes.HELD_OUT_PROMPTS]
    random.Random(args.seed).shuffle(seen)
    report = {
        "command": " ".join(["python research/probe_latents.py", *(sys.argv[1:] if argv is None else argv)]),
        "model": str(args.model),
        "settings": {key: value for key, value in vars(args).items() if key not in ("model", "output")},
        "shape_accuracy": {"real_held_out": real, "real_held_out_training_fit": real_training_fit},
    }
    for name, prompts in (("held_out", list(shapes.HELD_OUT_PROMPTS)), ("seen", seen[: args.seen_prompts])):
        repeated = [prompt for prompt in prompts for _ in range(args.samples_per_prompt)]
        probe_report, detector_report = generated_readings(
            pipe, probe, repeated, args.batch_size, args.seed, args.steps
        )
        report["shape_accuracy"][f"generated_{name}"] = probe_report
        report["shape_accuracy"][f"decoded_{name}"] = detector_report
    train_tokens = video_token_features(pipe, probe_latents)
    test_tokens = video_token_features(pipe, test_latents)
    report["shape_accuracy"]["video_tokens_held_out"] = {
        name: read_test_clips(
            train_shape_probe(train_tokens[name], labels, args.probe_epochs, args.seed), test_tokens[name]
        )
        for name in train_tokens
    }
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report["shape_accuracy"], indent=2))
    if args.output:
        with open(args.output, "w") as file:
            json.dump(report, file, indent=2)
    return report


if __name__ == "__main__":
    main()
