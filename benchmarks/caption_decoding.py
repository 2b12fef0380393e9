"""Caption accuracy against transformer calls: Euler text decoding vs confidence decoding at several thresholds.

The embedded default model (`univigu_hf.DEFAULT_MODEL`) captions the shapes world's held-out clips
(`shapes.generate_clips(..., split="held_out")`, the seed of `examples/shapes_world/eval_demo.py`) with the same
generators, once with `text_decoding="euler"` (the default: one transformer call per step) and once per threshold with
`text_decoding="confidence"` (commits the positions whose probability reaches the threshold, at least one per step,
and stops once all are committed). It reports the exact attribute accuracy (`shapes_scoring.score_captions`), the
transformer calls per caption batch (a forward hook), the share of captions identical to Euler's and the time.

    python benchmarks/caption_decoding.py --output docs/results/caption_decoding.json
    python benchmarks/caption_decoding.py --quick      # 8 clips
"""

import time

import torch
from _common import environment, parser
from _report import emit, repository_path

import univigu_hf
from univigu_hf import UniFlowScheduler, UniViGUPipeline, shapes
from univigu_hf.shapes.scoring import score_captions


EVAL_SEED = 424242  # examples/shapes_world/eval_demo.py's captioning clips (no training stage uses it)


def caption_all(pipe, clips, batch_size, steps) -> tuple[list[str], float, list[int]]:
    calls = [0]
    hook = pipe.transformer.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    captions, seconds, per_batch = [], 0.0, []
    try:
        for start in range(0, len(clips), batch_size):
            chunk = clips[start : start + batch_size]
            generators = [torch.Generator().manual_seed(EVAL_SEED + start + i) for i in range(len(chunk))]
            before = calls[0]
            began = time.perf_counter()
            output = pipe.caption([clip.frames for clip in chunk], num_inference_steps=steps, generator=generators)
            seconds += time.perf_counter() - began
            per_batch.append(calls[0] - before)
            captions.extend(output.text)
    finally:
        hook.remove()
    return captions, seconds, per_batch


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--model", default=univigu_hf.DEFAULT_MODEL, help="a saved UniViGUPipeline")
    args_parser.add_argument("--num-clips", type=int, default=120)
    args_parser.add_argument("--batch-size", type=int, default=40)
    args_parser.add_argument("--steps", type=int, default=None, help="text steps (default: the pipeline's)")
    args_parser.add_argument("--thresholds", type=float, nargs="+", default=[1.0, 0.99, 0.9, 0.7, 0.5, 0.3])
    args = args_parser.parse_args()
    if args.quick:
        args.num_clips = 8

    pipe = UniViGUPipeline.from_pretrained(args.model).to(args.device)
    pipe.set_progress_bar_config(disable=True)
    steps = args.steps or pipe.config.default_num_inference_steps
    clips = list(shapes.generate_clips(args.num_clips, seed=EVAL_SEED, split="held_out"))
    references = [clip.attributes.to_dict() for clip in clips]
    base_config = dict(pipe.scheduler.config)
    modes = {"euler": {"text_decoding": "euler"}}
    for threshold in args.thresholds:
        modes[f"confidence_{threshold:g}"] = {"text_decoding": "confidence", "text_confidence_threshold": threshold}

    caption_all(pipe, clips[: min(2, len(clips))], args.batch_size, 1)  # warm-up
    rows, euler_captions = {}, None
    for name, decoding in modes.items():
        pipe.scheduler = UniFlowScheduler.from_config(base_config, **decoding)
        captions, seconds, calls = caption_all(pipe, clips, args.batch_size, steps)
        euler_captions = captions if euler_captions is None else euler_captions
        scores = score_captions(captions, references)
        rows[name] = {
            **decoding,
            "transformer_calls_per_batch": calls,
            "mean_calls": round(sum(calls) / len(calls), 2),
            "mean_accuracy": round(scores["mean_accuracy"], 4),
            "accuracy": {key: round(value, 4) for key, value in scores["accuracy"].items()},
            "same_caption_as_euler": round(sum(a == b for a, b in zip(captions, euler_captions)) / len(clips), 4),
            "seconds": round(seconds, 3),
            "speedup_vs_euler": None,
            "examples": [{"reference": clip.caption, "generated": text} for clip, text in zip(clips[:3], captions)],
        }
    for row in rows.values():
        row["speedup_vs_euler"] = round(rows["euler"]["seconds"] / row["seconds"], 2)
    pipe.scheduler = UniFlowScheduler.from_config(base_config)
    results = {
        "benchmark": "caption_decoding",
        "quick": args.quick,
        **environment(args.device),
        "model": repository_path(args.model),
        "text_tokens": pipe.transformer.config.max_text_length,
        "text_source": base_config["text_source"],
        "num_clips": len(clips),
        "batch_size": args.batch_size,
        "split": "held_out",
        "steps": steps,
        "modes": rows,
    }
    emit(results, args.output)


if __name__ == "__main__":
    main()
