"""Caption accuracy against transformer calls: Euler text decoding vs confidence decoding at several thresholds.

The embedded default model (`univigu_hf.DEFAULT_MODEL`) captions the shapes world's held-out clips
(`shapes.generate_clips(..., split="held_out")`, the seed of `examples/shapes_world/eval_demo.py`) with the same
generators, once with `text_decoding="euler"` (the default: one transformer call per step) and once per threshold with
`text_decoding="confidence"` (commits the positions whose probability reaches the threshold, at least one per step,
and stops once all are committed). It reports the exact attribute accuracy (`shapes_scoring.score_captions`), the
transformer calls per caption batch (a forward hook), the share of captions identical to Euler's and the time.

Two more sections (`--sections`, all three by default):

* `mid_size`: the benchmarks' mid-size Wan-shaped config (`_common.MID_SIZE`, random weights: untrained, so only
  calls and time mean anything) captions a random 2048-token video with 256 caption tokens, 50 steps,
  `video_attends_text=False` and `video_cache="exact"` (as `benchmarks/captioning.py`), Euler vs confidence at
  `--mid-thresholds`; the VAE encoding (the same for all) is timed once and left out of the caption time.
* `joint`: `generate_joint` of the embedded default on the 12 held-out prompts x `--joint-seeds` seeds, Euler vs
  confidence at `--joint-thresholds`: joint consistency (the caption's prompt attributes equal the detectors' reading
  of the video, `examples/shapes_world/eval_demo.py`'s `evaluate_joint`), transformer calls and time.

    python benchmarks/caption_decoding.py --output docs/results/caption_decoding.json
    python benchmarks/caption_decoding.py --quick      # 8 clips, tiny mid-size config, 1 seed
    python benchmarks/caption_decoding.py --sections accuracy --batch-size 1 \
        --output docs/results/caption_decoding_batch1.json
"""

import os
import statistics
import sys
import time

import numpy as np
import torch
from _common import (
    MID_SIZE,
    MID_SIZE_TEXT_VOCAB,
    QUICK_SIZE,
    QUICK_TEXT_VOCAB,
    CallCounter,
    build_pipelines,
    caption_quality,
    compare_seconds,
    environment,
    interleaved_samples,
    parser,
    pixel_size,
)
from _report import REPOSITORY, emit, repository_path

import univigu_hf
from univigu_hf import UniFlowScheduler, UniViGUPipeline, shapes


SECTIONS = ("accuracy", "mid_size", "joint")
EVAL_SEED = 424242  # examples/shapes_world/eval_demo.py's captioning clips (no training stage uses it)


def caption_all(pipe, clips, batch_size, steps) -> tuple[list[str], float, list[int]]:
    captions, seconds, per_batch = [], 0.0, []
    with CallCounter(pipe.transformer) as counter:
        for start in range(0, len(clips), batch_size):
            chunk = clips[start : start + batch_size]
            generators = [torch.Generator().manual_seed(EVAL_SEED + start + i) for i in range(len(chunk))]
            before = counter.calls
            began = time.perf_counter()
            output = pipe.caption([clip.frames for clip in chunk], num_inference_steps=steps, generator=generators)
            seconds += time.perf_counter() - began
            per_batch.append(counter.calls - before)
            captions.extend(output.text)
    return captions, seconds, per_batch


def decoding_modes(thresholds) -> dict:
    modes = {"euler": {"text_decoding": "euler"}}
    for threshold in thresholds:
        modes[f"confidence_{threshold:g}"] = {"text_decoding": "confidence", "text_confidence_threshold": threshold}
    return modes


def mid_size_section(args) -> dict:
    """Seconds and transformer calls per caption on the mid-size config (random weights), 2k video tokens."""
    config, vocab = (QUICK_SIZE, QUICK_TEXT_VOCAB) if args.quick else (MID_SIZE, MID_SIZE_TEXT_VOCAB)
    video_tokens, text_tokens, steps = args.mid_video_tokens, args.mid_text_tokens, args.mid_steps
    if args.quick:
        video_tokens, text_tokens, steps = 128, 16, 4
    device = args.device
    _, pipe = build_pipelines(config, vocab, device, max_text_length=text_tokens, video_attends_text=False)
    size = pixel_size(video_tokens)
    video = np.random.default_rng(0).random((size["num_frames"], size["height"], size["width"], 3), dtype=np.float32)
    encode = compare_seconds(
        {"vae": lambda: pipe.encode_video(pipe.preprocess_video(video, **size))}, repeats=1, device=device
    )["vae"]
    latents = pipe.encode_video(pipe.preprocess_video(video, **size))
    pipe.encode_video = lambda pixels: latents  # the text denoising alone (the VAE encoding is timed above)
    base_config = dict(pipe.scheduler.config)
    modes = decoding_modes(args.mid_thresholds)
    calls, captions = {}, {}

    def caption(name):
        pipe.scheduler = UniFlowScheduler.from_config(base_config, **modes[name])
        with CallCounter(pipe.transformer) as counter:
            captions[name] = pipe.caption(
                video,
                num_inference_steps=steps,
                generator=torch.Generator(device).manual_seed(0),
                video_cache="exact",
                max_text_length=text_tokens,
                **size,
            ).text
        calls[name] = counter.calls

    try:
        samples = interleaved_samples(
            {name: lambda name=name: caption(name) for name in modes}, args.mid_repeats, device, warmup=0
        )
    finally:
        del pipe.encode_video
        pipe.scheduler = UniFlowScheduler.from_config(base_config)
    euler = statistics.median(samples["euler"])
    rows = {}
    for name, decoding in modes.items():
        seconds = statistics.median(samples[name])
        rows[name] = {
            **decoding,
            "transformer_calls": calls[name],
            "seconds": round(seconds, 3),
            "seconds_samples": [round(value, 3) for value in samples[name]],
            "speedup_vs_euler": round(euler / seconds, 2),
            "same_caption_as_euler": captions[name] == captions["euler"],
        }
    return {
        "note": "random weights (untrained): only transformer calls and time are meaningful, not the captions",
        "config": {**config, "text_dim": 32, "text_vocab_size": vocab, "video_attends_text": False},
        "video_tokens": video_tokens,
        "video": size,
        "text_tokens": text_tokens,
        "steps": steps,
        "video_cache": "exact",
        "repeats": args.mid_repeats,
        "vae_encode_s": round(encode, 3),
        "timing": "median text-denoising seconds per caption (VAE encoding excluded), modes run side by side",
        "modes": rows,
    }


def joint_section(args, pipe) -> dict:
    """Joint consistency, transformer calls and time of `generate_joint`, Euler vs confidence decoding."""
    sys.path.insert(0, os.path.join(REPOSITORY, "examples", "shapes_world"))
    from eval_demo import evaluate_joint

    seeds = 1 if args.quick else args.joint_seeds
    prompts = [prompt for prompt in shapes.HELD_OUT_PROMPTS for _ in range(seeds)]
    steps = args.steps or pipe.config.default_num_inference_steps
    base_config = dict(pipe.scheduler.config)
    rows = {}
    try:
        for name, decoding in decoding_modes(args.joint_thresholds).items():
            pipe.scheduler = UniFlowScheduler.from_config(base_config, **decoding)
            with CallCounter(pipe.transformer) as counter:
                began = time.perf_counter()
                report = evaluate_joint(pipe, prompts, args.batch_size, 0, steps)
                seconds = time.perf_counter() - began
            batches = -(-len(prompts) // args.batch_size)
            rows[name] = {
                **decoding,
                "consistency": round(report["consistency"], 4),
                "consistency_per_attribute": {k: round(v, 4) for k, v in report["consistency_per_attribute"].items()},
                "transformer_calls_per_batch": round(counter.calls / batches, 2),
                "seconds": round(seconds, 3),
                "seconds_per_sample": round(seconds / len(prompts), 4),
                "examples": report["examples"][:3],
            }
    finally:
        pipe.scheduler = UniFlowScheduler.from_config(base_config)
    for row in rows.values():
        row["speedup_vs_euler"] = round(rows["euler"]["seconds"] / row["seconds"], 2)
    return {
        "prompts": "shapes.HELD_OUT_PROMPTS",
        "seeds_per_prompt": seeds,
        "num_samples": len(prompts),
        "batch_size": args.batch_size,
        "seed": 0,
        "steps": steps,
        "guidance_scale": pipe.config.default_guidance_scale,
        "modes": rows,
    }


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--model", default=univigu_hf.DEFAULT_MODEL, help="a saved UniViGUPipeline")
    args_parser.add_argument("--num-clips", type=int, default=240)
    args_parser.add_argument("--batch-size", type=int, default=40)
    args_parser.add_argument("--steps", type=int, default=None, help="text steps (default: the pipeline's)")
    args_parser.add_argument(
        "--thresholds", type=float, nargs="+", default=[1.0, 0.99, 0.97, 0.95, 0.9, 0.7, 0.5, 0.3]
    )
    args_parser.add_argument(
        "--euler-steps", type=int, nargs="+", default=[5, 10, 20, 50], help="Euler step counts (accuracy section)"
    )
    args_parser.add_argument(
        "--confidence-steps",
        type=int,
        nargs="+",
        default=None,
        help="schedules (text steps) the thresholds run on (accuracy section; default: the pipeline's steps)",
    )
    args_parser.add_argument(
        "--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="what to measure (default: all)"
    )
    args_parser.add_argument("--mid-thresholds", type=float, nargs="+", default=[0.99, 0.9, 0.7])
    args_parser.add_argument("--mid-video-tokens", type=int, default=2048)
    args_parser.add_argument("--mid-text-tokens", type=int, default=256, help="caption tokens (official: 256)")
    args_parser.add_argument("--mid-steps", type=int, default=50, help="text steps (official: 50)")
    args_parser.add_argument("--mid-repeats", type=int, default=3)
    args_parser.add_argument("--joint-thresholds", type=float, nargs="+", default=[0.99, 0.9])
    args_parser.add_argument("--joint-seeds", type=int, default=10, help="seeds per held-out prompt")
    args = args_parser.parse_args()
    if args.quick:
        args.num_clips = 8

    pipe = UniViGUPipeline.from_pretrained(args.model).to(args.device)
    pipe.set_progress_bar_config(disable=True)
    results = {"benchmark": "caption_decoding", "quick": args.quick, **environment(args.device)}
    results["model"] = repository_path(args.model)
    if "accuracy" in args.sections:
        results.update(accuracy_section(args, pipe))
    if "mid_size" in args.sections:
        results["mid_size"] = mid_size_section(args)
    if "joint" in args.sections:
        results["joint"] = joint_section(args, pipe)
    emit(results, args.output)


def accuracy_modes(args, steps: int) -> dict:
    """`name -> (scheduler decoding, text steps)`: Euler at `args.euler_steps` (the pipeline's steps named `euler`,
    the reference) and confidence decoding at every threshold on every schedule of `args.confidence_steps`."""
    modes = {"euler": ({"text_decoding": "euler"}, steps)}
    for euler_steps in args.euler_steps:
        if euler_steps != steps:
            modes[f"euler_{euler_steps}"] = ({"text_decoding": "euler"}, euler_steps)
    for schedule in args.confidence_steps or [steps]:
        suffix = "" if schedule == steps else f"_{schedule}steps"
        for name, decoding in decoding_modes(args.thresholds).items():
            if name != "euler":
                modes[name + suffix] = (decoding, schedule)
    return modes


def accuracy_section(args, pipe) -> dict:
    """Caption accuracy, calls and time on the held-out clips: Euler at several step counts and confidence decoding at
    `args.thresholds`, each against Euler at the pipeline's steps."""
    steps = args.steps or pipe.config.default_num_inference_steps
    clips = list(shapes.generate_clips(args.num_clips, seed=EVAL_SEED, split="held_out"))
    references = [clip.attributes.to_dict() for clip in clips]
    base_config = dict(pipe.scheduler.config)

    caption_all(pipe, clips[: min(2, len(clips))], args.batch_size, 1)  # warm-up
    rows, euler_captions = {}, None
    for name, (decoding, mode_steps) in accuracy_modes(args, steps).items():
        pipe.scheduler = UniFlowScheduler.from_config(base_config, **decoding)
        captions, seconds, calls = caption_all(pipe, clips, args.batch_size, mode_steps)
        euler_captions = captions if euler_captions is None else euler_captions
        quality = caption_quality(captions, euler_captions, clips, references)
        rows[name] = {
            **decoding,
            "steps": mode_steps,
            "transformer_calls_per_batch": calls,
            "mean_calls": round(sum(calls) / len(calls), 2),
            "mean_accuracy": quality["mean_accuracy"],
            "accuracy": quality["accuracy"],
            "same_caption_as_euler": quality["same_as_baseline"],
            "seconds": round(seconds, 3),
            "speedup_vs_euler": None,
            "examples": quality["examples"],
        }
    for row in rows.values():
        row["speedup_vs_euler"] = round(rows["euler"]["seconds"] / row["seconds"], 2)
        row["fewer_calls_than_euler"] = round(rows["euler"]["mean_calls"] / row["mean_calls"], 2)
        row["accuracy_points_vs_euler"] = round(100 * (row["mean_accuracy"] - rows["euler"]["mean_accuracy"]), 2)
    pipe.scheduler = UniFlowScheduler.from_config(base_config)
    return {
        "text_tokens": pipe.transformer.config.max_text_length,
        "text_source": base_config["text_source"],
        "num_clips": len(clips),
        "batch_size": args.batch_size,
        "split": "held_out",
        "steps": steps,
        "calls": "transformer calls per caption batch (per caption at --batch-size 1); a batch stops once all its "
        "rows are committed",
        "modes": rows,
    }


if __name__ == "__main__":
    main()
