"""Wall time of each UniViGUPipeline mode on the tiny test pipeline, and the WanPipeline parity gap, in one run.

python benchmarks/pipeline_modes.py --output benchmarks/results/pipeline_modes.json
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch
from _report import emit


sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from conftest import TINY_VIDEO, build_tiny_pipelines  # noqa: E402


def median_seconds(fn, repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()

    unified, wan = build_tiny_pipelines()
    prompt, negative = ["a red circle moving left", "a blue square"], "gray background"
    common = dict(
        prompt=prompt, negative_prompt=negative, num_inference_steps=args.steps, guidance_scale=5.0, **TINY_VIDEO
    )
    video = unified.generate_video(prompt[0], generator=torch.Generator().manual_seed(0)).frames

    def seeded():
        return torch.Generator().manual_seed(0)

    wan_frames = wan(**common, generator=seeded()).frames
    ours = unified.generate_video(**common, use_text_stream=False, generator=seeded()).frames
    results = {
        "pipeline": "tiny test pipeline (2 layers, 2 heads, 16x16x5 video, 12 caption tokens)",
        "steps": args.steps,
        "threads": torch.get_num_threads(),
        "parity_max_abs_diff_vs_WanPipeline": float(np.abs(wan_frames - ours).max()),
        "seconds_median": {
            "WanPipeline_t2v_cfg_batch2": median_seconds(lambda: wan(**common, generator=seeded()), args.repeats),
            "t2v_cfg_batch2": median_seconds(
                lambda: unified.generate_video(**common, generator=seeded()), args.repeats
            ),
            "t2v_cfg_batch2_no_text_stream": median_seconds(
                lambda: unified.generate_video(**common, use_text_stream=False, generator=seeded()), args.repeats
            ),
            "v2t_batch1": median_seconds(
                lambda: unified.caption(video, num_inference_steps=args.steps, generator=seeded()), args.repeats
            ),
            "joint_cfg_batch2": median_seconds(
                lambda: unified.generate_joint(**common, generator=seeded()), args.repeats
            ),
        },
    }
    results["seconds_median"] = {k: round(v, 4) for k, v in results["seconds_median"].items()}
    emit(results, args.output)


if __name__ == "__main__":
    main()
