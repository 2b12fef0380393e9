"""diffusers' cache hooks on text-to-video with the embedded default model: speed-up and what the detectors read.

Each hook (`transformer.enable_cache(config)`) against no cache, on the held-out prompts (`shapes.HELD_OUT_PROMPTS`,
two seeds each), the default model's 20 steps and CFG 3.0: wall time of the pipeline calls and of the transformer's
forward passes alone (the default model is tiny, so the VAE and the text encoder are a large part of a call), the
transformer forwards actually computed, and the shapes-world detectors' accuracy (shape, color, size, direction) on
the generated videos. The configurations run in turns, prompt by prompt (A, B, C, ... then again), so machine load
affects all alike. Goal (MagCache's published anchor: 1.88x on Wan2.1-1.3B): a hook at >= 1.8x with <= 2 points lost.

    python benchmarks/cache_hooks.py --output docs/results/cache_hooks.json
    python benchmarks/cache_hooks.py --quick
"""

import statistics
import time

import torch
from _common import environment, parser
from _report import emit
from diffusers import (
    FasterCacheConfig,
    FirstBlockCacheConfig,
    PyramidAttentionBroadcastConfig,
    TaylorSeerCacheConfig,
)

import univigu_hf
from univigu_hf import UniViGUPipeline, shapes
from univigu_hf.shapes import scoring


ATTRIBUTES = ("shape", "color", "size", "direction")
GOAL_SPEEDUP, GOAL_POINTS = 1.8, 2.0


def configurations(pipe) -> dict:
    timestep = lambda: pipe.current_timestep  # noqa: E731
    return {
        "no cache": None,
        "FirstBlockCache threshold 0.05": FirstBlockCacheConfig(threshold=0.05),
        "FirstBlockCache threshold 0.2": FirstBlockCacheConfig(threshold=0.2),
        "TaylorSeer interval 3": TaylorSeerCacheConfig(cache_interval=3, disable_cache_before_step=4),
        "MagCache threshold 0.06": shapes.default_mag_cache_config(threshold=0.06),
        "MagCache threshold 0.24": shapes.default_mag_cache_config(threshold=0.24, max_skip_steps=4),
        "FasterCache": FasterCacheConfig(
            spatial_attention_block_skip_range=2, current_timestep_callback=timestep, is_guidance_distilled=True
        ),
        "PyramidAttentionBroadcast": PyramidAttentionBroadcastConfig(
            spatial_attention_block_skip_range=2,
            spatial_attention_timestep_skip_range=(100, 800),
            current_timestep_callback=timestep,
        ),
    }


class ForwardTimer:
    """Times the transformer's forward passes and counts the blocks that ran (a skipped block does not call its
    feed-forward)."""

    def __init__(self, transformer):
        self.seconds, self.blocks = 0.0, 0
        transformer.register_forward_pre_hook(self._start)
        transformer.register_forward_hook(self._stop)
        for block in transformer.blocks:
            block.ffn.register_forward_pre_hook(self._count)

    def _start(self, module, args):
        self._began = time.perf_counter()

    def _stop(self, module, args, output):
        self.seconds += time.perf_counter() - self._began

    def _count(self, module, args):
        self.blocks += 1


def main() -> None:
    args = parser(__doc__.split("\n\n")[0]).parse_args()
    pipe = UniViGUPipeline.from_pretrained(univigu_hf.DEFAULT_MODEL).to(args.device)
    pipe.set_progress_bar_config(disable=True)
    timer = ForwardTimer(pipe.transformer)
    prompts = list(shapes.HELD_OUT_PROMPTS)[: 2 if args.quick else None]
    seeds = [0] if args.quick else [0, 1]
    steps = 4 if args.quick else pipe.config.default_num_inference_steps
    configs = configurations(pipe)
    rows = {
        name: {"seconds": [], "transformer_seconds": 0.0, "blocks": 0, "videos": [], "prompts": []} for name in configs
    }

    for seed in seeds:
        for prompt in prompts:
            for name, config in configs.items():
                if config is not None:
                    pipe.transformer.enable_cache(config)
                timer.seconds, timer.blocks = 0.0, 0
                start = time.perf_counter()
                with torch.no_grad():
                    video = pipe(
                        prompt=prompt,
                        num_inference_steps=steps,
                        generator=torch.Generator().manual_seed(seed),
                        output_type="np",
                    ).frames[0]
                rows[name]["seconds"].append(time.perf_counter() - start)
                rows[name]["transformer_seconds"] += timer.seconds
                rows[name]["blocks"] += timer.blocks
                rows[name]["videos"].append(video)
                rows[name]["prompts"].append(prompt)
                if config is not None:
                    pipe.transformer.disable_cache()

    base = rows["no cache"]
    base_accuracy = scoring.score_videos(base["videos"], base["prompts"], attributes=ATTRIBUTES)
    results = {"environment": environment(args.device), "quick": args.quick, "steps": steps, "guidance_scale":
               pipe.config.default_guidance_scale, "videos_per_config": len(base["videos"]), "configs": {}}  # fmt: skip
    best = None
    for name, row in rows.items():
        accuracy = scoring.score_videos(row["videos"], row["prompts"], attributes=ATTRIBUTES)
        per_attribute = {a: round(float(accuracy["accuracy"][a]), 3) for a in ATTRIBUTES}
        mean = sum(per_attribute.values()) / len(ATTRIBUTES)
        base_mean = sum(float(base_accuracy["accuracy"][a]) for a in ATTRIBUTES) / len(ATTRIBUTES)
        entry = {
            "median_call_seconds": round(statistics.median(row["seconds"]), 4),
            "call_speedup": round(sum(base["seconds"]) / sum(row["seconds"]), 3),
            "transformer_speedup": round(base["transformer_seconds"] / row["transformer_seconds"], 3),
            "blocks_computed_fraction": round(row["blocks"] / base["blocks"], 3),
            "accuracy": per_attribute,
            "accuracy_points_lost": round(100 * (base_mean - mean), 1),
        }
        results["configs"][name] = entry
        if (
            name != "no cache"
            and entry["transformer_speedup"] >= GOAL_SPEEDUP
            and entry["accuracy_points_lost"] <= GOAL_POINTS
        ):
            best = (
                name
                if best is None or entry["transformer_speedup"] > results["configs"][best]["transformer_speedup"]
                else best
            )
    results["goal"] = f"a hook at >= {GOAL_SPEEDUP}x (transformer time) with <= {GOAL_POINTS} points of accuracy lost"
    results["goal_met"] = best is not None
    results["best"] = best
    emit(results, args.output)


if __name__ == "__main__":
    main()
