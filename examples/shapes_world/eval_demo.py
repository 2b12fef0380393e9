"""Scores the embedded default model on the shapes world's held-out combinations: `make eval-demo`.

    python examples/shapes_world/eval_demo.py --output docs/results/shapes.json \
        --ablation_model runs/shapes_world_refine_only/pipeline

Every number comes from the bundled `evaluate` metrics (`univigu_hf.shapes.scoring.load_metric`):

- captioning: clips of the 12 held-out prompts rendered with a seed no training stage used, captioned with
  `pipe.caption`; each caption is parsed and compared with the clip's true attributes (all seven), plus BLEU/ROUGE-L
  against the clip's reference caption. The same on training combinations (new seeds) for context;
- text-to-video: every held-out prompt with `--samples_per_prompt` seeds; the detectors read the generated videos;
- joint: every held-out prompt with `--samples_per_prompt` seeds through `pipe.generate_joint`; a sample is
  consistent when the attributes its caption states equal the detectors' reading of its video;
- the ablation (`--ablation_model`: Capability Refinement alone from the same base, same step budget): captioning
  accuracy of both models on the same clips.
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch

import univigu_hf
from univigu_hf import UniViGUPipeline, shapes
from univigu_hf.shapes.scoring import ATTRIBUTES, PROMPT_ATTRIBUTES, detect_attributes, load_metric, parse_caption


EVAL_SEED = 424242  # clips for captioning: a seed no training stage uses (training data: 0, VAE: 1000)
TARGETS = {
    "captioning": {
        **dict.fromkeys(("shape", "color", "size", "direction"), 0.95),
        **dict.fromkeys(("background", "speed", "start"), 0.80),
    },
    "text_to_video": {"color": 0.90, "direction": 0.90, "size": 0.85, "shape": 0.80},
    "joint_consistency": 0.90,
}


def batches(items, size):
    for start in range(0, len(items), size):
        yield start, items[start : start + size]


def generators(seed: int, start: int, count: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed + start + i) for i in range(count)]


def evaluate_captioning(pipe, clips, batch_size: int, seed: int, steps: int | None) -> dict:
    captions = []
    for start, chunk in batches(clips, batch_size):
        videos = [clip.frames for clip in chunk]
        out = pipe.caption(videos, num_inference_steps=steps, generator=generators(seed, start, len(chunk)))
        captions.extend(out.text)
    references = [clip.attributes.to_dict() for clip in clips]
    accuracy = load_metric("shapes_caption_accuracy").compute(predictions=captions, references=references)
    similarity = load_metric("caption_text_similarity").compute(
        predictions=captions, references=[clip.caption for clip in clips]
    )
    examples = [{"reference": clip.caption, "generated": caption} for clip, caption in zip(clips[:6], captions)]
    return {"metrics": accuracy, "text_similarity": similarity, "examples": examples}


def evaluate_text_to_video(pipe, prompts, batch_size: int, seed: int, steps: int | None) -> dict:
    metric = load_metric("shapes_video_accuracy")
    for start, chunk in batches(prompts, batch_size):
        out = pipe.generate_video(chunk, num_inference_steps=steps, generator=generators(seed, start, len(chunk)))
        metric.add_batch(predictions=list(out.frames), references=chunk)
    return {"metrics": metric.compute(attributes=list(PROMPT_ATTRIBUTES))}


def evaluate_joint(pipe, prompts, batch_size: int, seed: int, steps: int | None) -> dict:
    detected, parsed, texts = [], [], []
    for start, chunk in batches(prompts, batch_size):
        out = pipe.generate_joint(chunk, num_inference_steps=steps, generator=generators(seed, start, len(chunk)))
        detected.extend(detect_attributes(video) for video in out.frames)
        parsed.extend(parse_caption(text) for text in out.text)
        texts.extend(out.text)
    # A sample is consistent when every prompt attribute its caption states matches the video; the detailed
    # attributes (background, speed, start) are reported separately.
    consistent = [all(p[name] == d[name] for name in PROMPT_ATTRIBUTES) for p, d in zip(parsed, detected)]
    per_attribute = {
        name: float(np.mean([p[name] == d[name] for p, d in zip(parsed, detected)])) for name in ATTRIBUTES
    }
    video_vs_prompt = load_metric("shapes_video_accuracy").compute(
        predictions=[json.dumps(d) for d in detected], references=prompts, attributes=list(PROMPT_ATTRIBUTES)
    )
    caption_vs_prompt = load_metric("shapes_caption_accuracy").compute(
        predictions=texts, references=prompts, attributes=list(PROMPT_ATTRIBUTES)
    )
    examples = [{"prompt": p, "caption": t, "video_reading": d} for p, t, d in zip(prompts[:6], texts, detected)]
    return {
        "consistency": float(np.mean(consistent)),
        "metrics": {"consistency": float(np.mean(consistent)), "num_samples": len(consistent)},  # for model cards
        "consistency_per_attribute": per_attribute,
        "video_vs_prompt": video_vs_prompt,
        "caption_vs_prompt": caption_vs_prompt,
        "examples": examples,
    }


def check_targets(report: dict) -> dict:
    caption = report["captioning_held_out"]["metrics"]
    video = report["text_to_video"]["metrics"]
    checks = {}
    for name, target in TARGETS["captioning"].items():
        checks[f"captioning.{name}"] = {"value": caption[f"{name}_accuracy"], "target": target}
    for name, target in TARGETS["text_to_video"].items():
        checks[f"text_to_video.{name}"] = {"value": video[f"{name}_accuracy"], "target": target}
    checks["joint.consistency"] = {"value": report["joint"]["consistency"], "target": TARGETS["joint_consistency"]}
    for check in checks.values():
        check["met"] = check["value"] >= check["target"]
    return checks


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=univigu_hf.DEFAULT_MODEL)
    parser.add_argument("--ablation_model", default=None, help="Capability Refinement alone (same budget).")
    parser.add_argument("--output", default="docs/results/shapes.json")
    parser.add_argument("--caption_clips", type=int, default=240, help="Held-out clips to caption.")
    parser.add_argument("--seen_caption_clips", type=int, default=120, help="Training-combination clips (new seeds).")
    parser.add_argument("--samples_per_prompt", type=int, default=10, help="Per held-out prompt, for t2v and joint.")
    parser.add_argument("--steps", type=int, default=None, help="Denoising steps (default: the pipeline's).")
    parser.add_argument("--batch_size", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    pipe = UniViGUPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    held_out = list(shapes.generate_clips(args.caption_clips, seed=EVAL_SEED, split="held_out"))
    seen = list(shapes.generate_clips(args.seen_caption_clips, seed=EVAL_SEED + 1, split="train"))
    prompts = [p for p in shapes.HELD_OUT_PROMPTS for _ in range(args.samples_per_prompt)]
    steps = args.steps or pipe.config.default_num_inference_steps

    report = {
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "model": os.path.relpath(args.model) if os.path.isdir(args.model) else args.model,
        # Names the evaluation data in model cards (univigu_hf.hub.create_model_card(..., metrics=<this file>)).
        "dataset": {"name": "Shapes world", "type": "shapes-world"},
        "settings": {
            "num_inference_steps": steps,
            "guidance_scale": pipe.config.default_guidance_scale,
            "held_out_prompts": list(shapes.HELD_OUT_PROMPTS),
            "caption_clips": args.caption_clips,
            "eval_seed": EVAL_SEED,
            "samples_per_prompt": args.samples_per_prompt,
            "seed": args.seed,
        },
        "environment": {"torch": torch.__version__, "machine": platform.machine(), "threads": torch.get_num_threads()},
        "timings_s": {},
    }
    tasks = {
        "captioning_held_out": lambda p: evaluate_captioning(p, held_out, args.batch_size, args.seed, steps),
        "captioning_seen_combinations": lambda p: evaluate_captioning(p, seen, args.batch_size, args.seed, steps),
        "text_to_video": lambda p: evaluate_text_to_video(p, prompts, args.batch_size, args.seed, steps),
        "joint": lambda p: evaluate_joint(p, prompts, args.batch_size, args.seed, steps),
    }
    for name, task in tasks.items():
        start = time.perf_counter()
        report[name] = task(pipe)
        report["timings_s"][name] = round(time.perf_counter() - start, 1)
        print(f"[eval-demo] {name}: {json.dumps(report[name].get('metrics', report[name].get('consistency')))}")
    report["targets"] = check_targets(report)

    if args.ablation_model:
        ablation = UniViGUPipeline.from_pretrained(args.ablation_model)
        ablation.set_progress_bar_config(disable=True)
        start = time.perf_counter()
        refine_only = evaluate_captioning(ablation, held_out, args.batch_size, args.seed, steps)
        report["timings_s"]["ablation"] = round(time.perf_counter() - start, 1)
        report["ablation"] = {
            "question": "Capability Refinement after Knowledge Recall vs Capability Refinement alone, same step budget",
            "recall_then_refine": report["captioning_held_out"]["metrics"],
            "refine_only": refine_only["metrics"],
            "refine_only_model": os.path.relpath(args.ablation_model),
        }
        print(f"[eval-demo] ablation refine_only: {json.dumps(refine_only['metrics'])}")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    for name, check in report["targets"].items():
        print(
            f"[eval-demo] {name}: {check['value']:.3f} (target {check['target']:.2f}) {'OK' if check['met'] else 'MISSED'}"
        )
    print(f"[eval-demo] wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
