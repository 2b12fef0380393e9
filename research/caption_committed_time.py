"""Does confidence decoding need fewer calls if the text stream is told how clean its text is?

With `text_decoding="confidence"`, committed positions hold clean tokens earlier than the schedule's text time `t`
says: the model sees, at time `t`, a caption in which a share `f` of positions is committed (clean) and the rest is
clean with probability `kappa(t) = t`. This experiment feeds the model the time of that clean share instead,
`t_eff = f + (1 - f) * t` per row (the schedule's `t` when nothing is committed), and compares calls and accuracy with
the schedule's time, on the embedded default model's held-out clips (as `benchmarks/caption_decoding.py`, batch 1).
It patches the pipeline in this process only; the library is unchanged.

    OMP_NUM_THREADS=1 python research/caption_committed_time.py --output research/caption_committed_time.json
"""

import argparse
import sys
import time
import types
from pathlib import Path

import torch


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import caption_quality  # noqa: E402
from _report import emit  # noqa: E402
from caption_decoding import EVAL_SEED, CallCounter  # noqa: E402

import univigu_hf  # noqa: E402
from univigu_hf import UniFlowScheduler, UniViGUPipeline, shapes  # noqa: E402


def clean_fraction_time(pipe, scheduler):
    """Patches `pipe` so the text time given to the model is the clean share its committed positions imply."""
    state = {"committed": None}
    step_text, to_timestep = pipe._step_text, scheduler.text_time_to_timestep

    def step(self, logits, t_text, text_ids, generators, t_next, committed):
        ids, state["committed"] = step_text(logits, t_text, text_ids, generators, t_next, committed)
        return ids, state["committed"]

    def timestep(t):
        committed = state["committed"]
        if committed is None:
            return to_timestep(t)
        share = committed.float().mean(-1)
        t = torch.as_tensor(t, dtype=torch.float32)
        return torch.stack([to_timestep(float(value)) for value in share + (1 - share) * t])

    pipe._step_text = types.MethodType(step, pipe)
    scheduler.text_time_to_timestep = timestep
    return state


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-clips", type=int, default=240)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.99, 0.9, 0.8])
    parser.add_argument("--schedules", type=int, nargs="+", default=[10, 20], help="text steps")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()

    pipe = UniViGUPipeline.from_pretrained(univigu_hf.DEFAULT_MODEL)
    pipe.set_progress_bar_config(disable=True)
    base = dict(pipe.scheduler.config)
    step_text = pipe._step_text
    clips = list(shapes.generate_clips(args.num_clips, seed=EVAL_SEED, split="held_out"))
    references = [clip.attributes.to_dict() for clip in clips]
    rows = {}
    for steps in args.schedules:
        for threshold in args.thresholds:
            for text_time in ("schedule", "clean_fraction"):
                pipe.scheduler = UniFlowScheduler.from_config(
                    base, text_decoding="confidence", text_confidence_threshold=threshold
                )
                pipe._step_text = step_text
                state = clean_fraction_time(pipe, pipe.scheduler) if text_time == "clean_fraction" else {}
                captions, began = [], time.perf_counter()
                with CallCounter(pipe.transformer) as counter:
                    for index, clip in enumerate(clips):
                        state["committed"] = None
                        generator = torch.Generator().manual_seed(EVAL_SEED + index)
                        captions += pipe.caption([clip.frames], num_inference_steps=steps, generator=[generator]).text
                quality = caption_quality(captions, captions, clips, references)
                name = f"{text_time}_{threshold:g}_{steps}steps"
                rows[name] = {
                    "text_time": text_time,
                    "threshold": threshold,
                    "steps": steps,
                    "mean_calls": round(counter.calls / len(clips), 2),
                    "mean_accuracy": quality["mean_accuracy"],
                    "accuracy": quality["accuracy"],
                    "seconds": round(time.perf_counter() - began, 1),
                }
                print(name, rows[name]["mean_calls"], rows[name]["mean_accuracy"], flush=True)
    report = {
        "experiment": "caption_committed_time",
        "threads": torch.get_num_threads(),
        "num_clips": len(clips),
        "batch_size": 1,
        "rows": rows,
    }
    emit(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
