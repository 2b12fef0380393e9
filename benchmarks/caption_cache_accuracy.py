"""Caption accuracy and time with the video context cache, on the shapes world's held-out clips.

The embedded default model (`univigu_hf.DEFAULT_MODEL`) is trained with `video_attends_text=False`, so it is run with
`video_cache="off"` and `"exact"`: identical captions, and the time of each. A joint-attention model
(`video_attends_text=True`, the official default; `--model runs/shapes_world_joint/refine` from
`make train-demo-joint`) has only the approximate cache: the video keys/values of a full step are reused by the
following text-only steps, and a full step recomputes them every `video_cache_refresh` steps; it is run uncached and
with each refresh interval. Either way the script captions the same held-out clips
(`shapes.generate_clips(..., split="held_out")`, the seed of `examples/shapes_world/eval_demo.py`) with the same
generators and reports the exact attribute accuracy (`shapes_scoring.score_captions`), the share of captions
identical to the uncached ones and the time.

    python benchmarks/caption_cache_accuracy.py --output docs/results/caption_cache_accuracy.json
    python benchmarks/caption_cache_accuracy.py --model runs/shapes_world_joint/refine --steps 20 \
        --output docs/results/caption_cache_accuracy_joint.json
    python benchmarks/caption_cache_accuracy.py --quick      # 8 clips
"""

import time

import torch
from _common import caption_quality, environment, parser
from _report import emit, repository_path

import univigu_hf
from univigu_hf import UniViGUPipeline, shapes


EVAL_SEED = 424242  # examples/shapes_world/eval_demo.py's captioning clips (no training stage uses it)


def caption_all(pipe, clips, batch_size, steps, **cache) -> tuple[list[str], float]:
    captions, seconds = [], 0.0
    for start in range(0, len(clips), batch_size):
        chunk = clips[start : start + batch_size]
        generators = [torch.Generator().manual_seed(EVAL_SEED + start + i) for i in range(len(chunk))]
        began = time.perf_counter()
        output = pipe.caption(
            [clip.frames for clip in chunk], num_inference_steps=steps, generator=generators, **cache
        )
        seconds += time.perf_counter() - began
        captions.extend(output.text)
    return captions, seconds


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--model", default=univigu_hf.DEFAULT_MODEL, help="a saved UniViGUPipeline")
    args_parser.add_argument("--num-clips", type=int, default=120)
    args_parser.add_argument("--batch-size", type=int, default=40)
    args_parser.add_argument("--steps", type=int, default=None, help="text steps (default: the pipeline's)")
    args_parser.add_argument("--refresh", type=int, nargs="+", default=[10, 5, 2], help="approx refresh intervals")
    args = args_parser.parse_args()
    if args.quick:
        args.num_clips = 8

    pipe = UniViGUPipeline.from_pretrained(args.model).to(args.device)
    pipe.set_progress_bar_config(disable=True)
    steps = args.steps or pipe.config.default_num_inference_steps
    clips = list(shapes.generate_clips(args.num_clips, seed=EVAL_SEED, split="held_out"))
    references = [clip.attributes.to_dict() for clip in clips]
    if pipe.transformer.config.video_attends_text:
        modes = {"off": {"video_cache": "off"}, "approx_first_step_only": {"video_cache": "approx"}}
        for refresh in args.refresh:
            modes[f"approx_refresh_{refresh}"] = {"video_cache": "approx", "video_cache_refresh": refresh}
    else:
        modes = {"off": {"video_cache": "off"}, "exact": {"video_cache": "exact"}}

    caption_all(pipe, clips[: min(2, len(clips))], args.batch_size, 1)  # warm-up
    rows, reference_captions = {}, None
    for name, cache in modes.items():
        captions, seconds = caption_all(pipe, clips, args.batch_size, steps, **cache)
        reference_captions = captions if reference_captions is None else reference_captions
        quality = caption_quality(captions, reference_captions, clips, references)
        refresh = cache.get("video_cache_refresh")
        full_steps = steps if cache["video_cache"] == "off" else len(range(0, steps, refresh or steps))
        rows[name] = {
            **cache,
            "full_steps": full_steps,
            "mean_accuracy": quality["mean_accuracy"],
            "accuracy": quality["accuracy"],
            "same_caption_as_off": quality["same_as_baseline"],
            "seconds": round(seconds, 3),
            "speedup_vs_off": None,
            "examples": quality["examples"],
        }
    for row in rows.values():
        row["speedup_vs_off"] = round(rows["off"]["seconds"] / row["seconds"], 2)
    config = pipe.transformer.config
    results = {
        "benchmark": "caption_cache_accuracy",
        "quick": args.quick,
        **environment(args.device),
        "model": repository_path(args.model),
        "video_attends_text": config.video_attends_text,
        "video_tokens": None,
        "text_tokens": config.max_text_length,
        "num_clips": len(clips),
        "split": "held_out",
        "steps": steps,
        "modes": rows,
    }
    latents = pipe.encode_video(pipe.preprocess_video(clips[0].frames))
    patch = config.patch_size
    results["video_tokens"] = (
        (latents.shape[2] // patch[0]) * (latents.shape[3] // patch[1]) * (latents.shape[4] // patch[2])
    )
    emit(results, args.output)


if __name__ == "__main__":
    main()
