"""What a video LoRA does to captioning (issue 38): one short LoRA run on the embedded default model.

    OMP_NUM_THREADS=1 .venv/bin/python research/lora_captioning.py --output research/lora_captioning.json

1. Data: `shapes.export_folder` writes training clips (`split="train"`, seed 7); only the clips on a `gray`
   background are kept, so the LoRA has a "style" to learn (the default model draws both backgrounds).
2. Training: `examples/train_refine.py`'s `run("refine")` from `univigu_hf.DEFAULT_MODEL` with `--use_peft`
   (rank 16 on `to_q to_k to_v to_out.0` of both attentions of every block), generation objective only
   (`--generation_prob 1 --understanding_prob 0 --joint_prob 0`): the way a user trains a Wan style LoRA.
3. The adapter is re-saved in diffusers format (`UniViGUPipeline.save_lora_weights`), loaded into a fresh
   `UniViGUPipeline.from_pretrained(DEFAULT_MODEL)` with `load_lora_weights`, and scored: captioning of held-out
   clips (per-attribute accuracy, `shapes_caption_accuracy`) and text-to-video on the held-out prompts (detectors),
   without the LoRA, with it, fused, and at adapter weight 0.5.

One run, one training seed, one evaluation seed: differences of a few points are within noise.
"""

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np
import torch

import univigu_hf
from univigu_hf import UniViGUPipeline, shapes
from univigu_hf.shapes.scoring import ATTRIBUTES, PROMPT_ATTRIBUTES, detect_attributes, load_metric, parse_caption


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVAL_SEED = 424242  # the captioning clips of examples/shapes_world/eval_demo.py
STYLE = ("background", "gray")


def rel(path: str) -> str:
    return os.path.relpath(path, REPO)


def export_subset(work_dir: str, num_clips: int, seed: int) -> tuple[str, int]:
    full = os.path.join(work_dir, "all_clips")
    subset = os.path.join(work_dir, "gray_clips")
    if os.path.exists(os.path.join(subset, "metadata.jsonl")):
        with open(os.path.join(subset, "metadata.jsonl"), encoding="utf-8") as handle:
            return subset, sum(1 for _ in handle)
    if not os.path.exists(os.path.join(full, "metadata.jsonl")):
        shapes.export_folder(full, num_clips, seed=seed, split="train")
    os.makedirs(subset, exist_ok=True)
    kept = []
    with open(os.path.join(full, "metadata.jsonl"), encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            text = json.dumps(row)
            if f'"{STYLE[0]}": "{STYLE[1]}"' in text or parse_caption(row["caption"])[STYLE[0]] == STYLE[1]:
                shutil.copy(os.path.join(full, row["file_name"]), os.path.join(subset, row["file_name"]))
                kept.append(line if line.endswith("\n") else line + "\n")
    with open(os.path.join(subset, "metadata.jsonl"), "w", encoding="utf-8") as handle:
        handle.writelines(kept)
    return subset, len(kept)


def train(data_dir: str, output_dir: str, args) -> float:
    from univigu_hf.training.script import run

    argv = [
        "--config", os.path.join(REPO, "examples/shapes_world/configs/refine.yaml"),
        "--init_from", univigu_hf.DEFAULT_MODEL,
        "--dataset_name", data_dir,
        "--output_dir", output_dir,
        "--max_steps", str(args.steps),
        "--use_peft", "--lora_r", str(args.rank), "--lora_alpha", str(args.rank),
        "--lora_target_modules", "to_q", "to_k", "to_v", "to_out.0",
        "--generation_prob", "1", "--understanding_prob", "0", "--joint_prob", "0",
        "--learning_rate", str(args.learning_rate), "--warmup_steps", "20",
        "--per_device_train_batch_size", "16",
        "--save_steps", "100000", "--logging_steps", "25", "--seed", "0",
    ]  # fmt: skip
    start = time.time()
    run("refine", argv)
    return time.time() - start


def generators(seed: int, start: int, count: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed + start + i) for i in range(count)]


def captioning(pipe, clips, batch_size: int) -> dict:
    captions = []
    for start in range(0, len(clips), batch_size):
        chunk = clips[start : start + batch_size]
        out = pipe.caption([c.frames for c in chunk], generator=generators(EVAL_SEED, start, len(chunk)))
        captions.extend(out.text)
    references = [clip.attributes.to_dict() for clip in clips]
    metrics = load_metric("shapes_caption_accuracy").compute(predictions=captions, references=references)
    stated = [parse_caption(text)[STYLE[0]] for text in captions]
    metrics[f"says_{STYLE[1]}"] = float(np.mean([s == STYLE[1] for s in stated]))
    return {"metrics": metrics, "captions": captions}


def text_to_video(pipe, prompts: list[str], seeds: int, batch_size: int) -> dict:
    jobs = [(prompt, seed) for seed in range(seeds) for prompt in prompts]
    readings = []
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        out = pipe.generate_video(
            [p for p, _ in chunk], generator=[torch.Generator().manual_seed(1000 + s) for _, s in chunk]
        )
        readings.extend(detect_attributes(video) for video in out.frames)
    truth = [parse_caption(p) for p, _ in jobs]
    metrics = {
        name: float(np.mean([r[name] == t[name] for r, t in zip(readings, truth)])) for name in PROMPT_ATTRIBUTES
    }
    metrics[f"{STYLE[0]}_{STYLE[1]}"] = float(np.mean([r[STYLE[0]] == STYLE[1] for r in readings]))
    metrics["num_samples"] = len(readings)
    return {"metrics": metrics}


def evaluate(pipe, clips, prompts, args) -> dict:
    start = time.time()
    report = {
        "captioning": captioning(pipe, clips, args.batch_size),
        "text_to_video": text_to_video(pipe, prompts, args.t2v_seeds, args.batch_size),
    }
    report["seconds"] = round(time.time() - start, 1)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work_dir", default=os.path.join(REPO, "runs", "lora_captioning"))
    parser.add_argument("--output", default=os.path.join(REPO, "research", "lora_captioning.json"))
    parser.add_argument("--num_clips", type=int, default=640, help="exported before keeping the gray ones")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--eval_clips", type=int, default=96)
    parser.add_argument("--t2v_seeds", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=24)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    timings = {}

    start = time.time()
    data_dir, num_train = export_subset(args.work_dir, args.num_clips, seed=7)
    timings["data"] = round(time.time() - start, 1)
    train_dir = os.path.join(args.work_dir, "train")
    if not os.path.exists(os.path.join(train_dir, "adapter", "adapter_config.json")):
        timings["train"] = round(train(data_dir, train_dir, args), 1)
    with open(os.path.join(train_dir, "training_summary.json"), encoding="utf-8") as handle:
        summary = json.load(handle)

    # The adapter folder in diffusers' format, then a fresh pipeline loads that file.
    pipe = UniViGUPipeline.from_pretrained(univigu_hf.DEFAULT_MODEL)
    pipe.load_lora_weights(os.path.join(train_dir, "adapter"), adapter_name="gray")
    from peft.utils import get_peft_model_state_dict

    lora_dir = os.path.join(args.work_dir, "lora")
    config = pipe.transformer.peft_config["gray"].to_dict()
    UniViGUPipeline.save_lora_weights(
        lora_dir,
        transformer_lora_layers=get_peft_model_state_dict(pipe.transformer, adapter_name="gray"),
        transformer_lora_adapter_metadata=config,
    )
    del pipe

    clips = list(shapes.generate_clips(args.eval_clips, seed=EVAL_SEED, split="held_out"))
    prompts = list(shapes.HELD_OUT_PROMPTS)
    pipe = UniViGUPipeline.from_pretrained(univigu_hf.DEFAULT_MODEL)
    pipe.set_progress_bar_config(disable=True)
    results = {"no_lora": evaluate(pipe, clips, prompts, args)}
    pipe.load_lora_weights(lora_dir, weight_name="pytorch_lora_weights.safetensors", adapter_name="gray")
    results["lora"] = evaluate(pipe, clips, prompts, args)
    pipe.set_adapters(["gray"], adapter_weights=[0.5])
    results["lora_weight_0.5"] = evaluate(pipe, clips, prompts, args)
    pipe.set_adapters(["gray"], adapter_weights=[1.0])
    pipe.fuse_lora(lora_scale=1.0)
    results["lora_fused"] = evaluate(pipe, clips, prompts, args)
    fused_same = results["lora_fused"]["captioning"]["captions"] == results["lora"]["captioning"]["captions"]
    pipe.unfuse_lora()
    pipe.unload_lora_weights()

    base_captions = results["no_lora"]["captioning"]["captions"]
    for report in results.values():
        changed = sum(a != b for a, b in zip(base_captions, report["captioning"]["captions"]))
        report["captioning"]["captions_changed_vs_no_lora"] = changed
    examples = [
        {"reference": clip.caption, **{name: results[name]["captioning"]["captions"][i] for name in results}}
        for i, clip in enumerate(clips[:6])
    ]
    for report in results.values():
        report["captioning"].pop("captions")
    report = {
        "command": "OMP_NUM_THREADS=1 .venv/bin/python research/lora_captioning.py --output research/lora_captioning.json",
        "arguments": {k: (rel(v) if k in ("work_dir", "output") else v) for k, v in vars(args).items()},
        "data": {
            "folder": rel(data_dir),
            "exported": args.num_clips,
            "kept": num_train,
            "filter": f"{STYLE[0]} == {STYLE[1]}",
            "split": "train",
            "seed": 7,
        },
        "lora": {
            "file": rel(os.path.join(lora_dir, "pytorch_lora_weights.safetensors")),
            "rank": config.get("r"),
            "alpha": config.get("lora_alpha"),
            "target_modules": sorted(config.get("target_modules") or []),
            "objective": "generation only (generation_prob 1), video path",
            "steps": summary.get("global_step"),
            "final_losses": {k: v for k, v in summary.get("metrics", {}).items() if "loss" in k},
            "lora_settings": summary.get("lora"),
        },
        "evaluation": {
            "captioning_clips": f"{args.eval_clips} held-out clips, shapes.generate_clips(seed={EVAL_SEED})",
            "text_to_video": f"{len(prompts)} held-out prompts x {args.t2v_seeds} seeds",
            "defaults": "pipeline defaults (20 steps, guidance 3.0)",
            "attributes": list(ATTRIBUTES),
        },
        "results": results,
        "fused_captions_equal_unfused": fused_same,
        "examples": examples,
        "timings_s": timings,
        "torch_threads": torch.get_num_threads(),
        "note": "one training run, one seed; CPU",
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    print(
        json.dumps({name: r["captioning"]["metrics"] | r["text_to_video"]["metrics"] for name, r in results.items()})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
