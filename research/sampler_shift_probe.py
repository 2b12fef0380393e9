"""Is the sampler what keeps the embedded default from drawing shape? Text-to-video shape at other sampling shifts.

The embedded default model generates the 12 held-out prompts (4 seeds each, guidance 3) with the video sigma shift of
its scheduler (3.0) and with lower shifts (more of the steps at low noise, where an outline is refined) at 20 and 50
steps, read by the detectors as in `research/base_learning_curve.py`.

    OMP_NUM_THREADS=1 python research/sampler_shift_probe.py --output research/sampler_shift_probe.json
"""

import argparse
import sys
import time
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _report import emit  # noqa: E402
from base_learning_curve import score  # noqa: E402

from univigu_hf import DEFAULT_MODEL, UniFlowScheduler, UniViGUPipeline, shapes  # noqa: E402


SETTINGS = [(3.0, 20), (1.0, 20), (1.0, 50), (0.5, 50)]  # (shift, steps); the first is the model's default


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipe = UniViGUPipeline.from_pretrained(DEFAULT_MODEL)
    pipe.set_progress_bar_config(disable=True)
    base = dict(pipe.scheduler.config)
    rows = {}
    for shift, steps in SETTINGS:
        pipe.scheduler = UniFlowScheduler.from_config(base, shift=shift)
        began = time.perf_counter()
        result = score(pipe, shapes.HELD_OUT_PROMPTS, args.seeds, num_inference_steps=steps)
        rows[f"shift_{shift:g}_steps_{steps}"] = {
            "shift": shift,
            "steps": steps,
            **{name: result[name] for name in ("shape", "color", "size", "direction", "shapes_drawn")},
            "seconds": round(time.perf_counter() - began, 1),
        }
        print(shift, steps, rows[f"shift_{shift:g}_steps_{steps}"], flush=True)
    report = {"model": "univigu_hf.DEFAULT_MODEL", "default_shift": base["shift"], "seeds": args.seeds, "rows": rows}
    emit(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
