"""Wall time of each UniViGUPipeline mode on the tiny test pipeline, and the WanPipeline parity gap, in one run.

python benchmarks/pipeline_modes.py --output docs/results/pipeline_modes.json
python benchmarks/pipeline_modes.py --quick      # seconds-long smoke run
"""

import numpy as np
import torch
from _common import compare_seconds, environment, parser
from _report import emit

from univigu_hf.testing import TINY_VIDEO, build_tiny_pipelines


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--steps", type=int, default=4)
    args_parser.add_argument("--repeats", type=int, default=5)
    args = args_parser.parse_args()
    if args.quick:
        args.steps, args.repeats = 2, 1

    unified, wan = build_tiny_pipelines()
    for pipe in (unified, wan):
        pipe.to(args.device)
    prompt, negative = ["a red circle moving left", "a blue square"], "gray background"
    common = dict(
        prompt=prompt, negative_prompt=negative, num_inference_steps=args.steps, guidance_scale=5.0, **TINY_VIDEO
    )
    video = unified.generate_video(prompt[0], generator=torch.Generator().manual_seed(0)).frames

    def seeded():
        return torch.Generator(args.device).manual_seed(0)

    wan_frames = wan(**common, generator=seeded()).frames
    ours = unified.generate_video(**common, use_text_stream=False, generator=seeded()).frames
    seconds = compare_seconds(
        {
            "WanPipeline_t2v_cfg_batch2": lambda: wan(**common, generator=seeded()),
            "t2v_cfg_batch2": lambda: unified.generate_video(**common, generator=seeded()),
            "t2v_cfg_batch2_no_text_stream": lambda: unified.generate_video(
                **common, use_text_stream=False, generator=seeded()
            ),
            "v2t_batch1": lambda: unified.caption(video, num_inference_steps=args.steps, generator=seeded()),
            "joint_cfg_batch2": lambda: unified.generate_joint(**common, generator=seeded()),
        },
        args.repeats,
        args.device,
    )
    results = {
        "benchmark": "pipeline_modes",
        "quick": args.quick,
        **environment(args.device),
        "pipeline": "tiny test pipeline (2 layers, 2 heads, 16x16x5 video, 12 caption tokens)",
        "steps": args.steps,
        "parity_max_abs_diff_vs_WanPipeline": float(np.abs(wan_frames - ours).max()),
        "seconds_median": {name: round(value, 4) for name, value in seconds.items()},
    }
    emit(results, args.output)


if __name__ == "__main__":
    main()
