"""Learning curve of the shapes world's stage-0 generator alone: text-to-video accuracy vs training steps and minutes.

Trains the VAE of a design (or reuses the shipped one), then the Wan base with the recipe's `base.yaml`, and every
`--eval_every` steps generates videos for the 12 held-out prompts and 12 training prompts (`--seeds` each) with the
raw weights and with an exponential moving average of them (diffusers' `EMAModel`), read by the detectors.

    python research/base_learning_curve.py --design t4_patch2 --work_dir runs/curve_t4 --steps 4000
    python research/base_learning_curve.py --design t1_patch2 --work_dir runs/curve_t1 --steps 3000 --threads 1

The report (`<work_dir>/curve.json`) is written after every evaluation.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKLWan
from diffusers.training_utils import EMAModel
from transformers import TrainerCallback


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "shapes_world"))

import train_demo  # noqa: E402

from univigu_hf import DEFAULT_MODEL, UniViGUPipeline, shapes  # noqa: E402
from univigu_hf.shapes.scoring import PROMPT_ATTRIBUTES, detect_attributes, parse_caption  # noqa: E402
from univigu_hf.training.script import run  # noqa: E402


def _vae(**overrides) -> dict:
    return {**train_demo.VAE, **overrides}


DESIGNS = {
    # The shipped design: 4x temporal, patch 2x2 -> 3 x 4 x 4 = 48 video tokens; the shipped VAE.
    "t4_patch2": dict(vae=None, transformer={}),
    # Each latent frame covers two frames: 5 x 4 x 4 = 80 tokens.
    "t2_patch2": dict(vae=_vae(temperal_downsample=[True, False], scale_factor_temporal=2), transformer={}),
    # One latent frame per frame: 9 x 4 x 4 = 144 tokens.
    "t1_patch2": dict(vae=_vae(temperal_downsample=[False, False], scale_factor_temporal=1), transformer={}),
    # The shipped VAE with one token per latent pixel: 3 x 8 x 8 = 192 tokens.
    "t4_patch1": dict(vae=None, transformer=dict(patch_size=(1, 1, 1))),
    # As t4_patch1 with larger shapes (10 and 15 px across on 32 px instead of 8 and 13): more latent pixels per shape.
    "t4_patch1_big": dict(vae=None, transformer=dict(patch_size=(1, 1, 1)), half_sizes={"small": 0.16, "large": 0.24}),
    # Still images: the shipped design trained and sampled on each clip's first frame alone (one latent frame, no
    # temporal compression, 16 tokens): tells a spatial limit from a temporal one. Motion is not scored.
    "t4_patch2_still": dict(vae=None, transformer={}, num_frames=1),
    # Shape laid out in space rather than packed into channels: a VAE with 2x spatial and 2x temporal compression
    # (8 channels on a 16 x 16 grid, 5 latent frames) and patch 1x4x4, so a token still covers 8 x 8 pixels:
    # 5 x 4 x 4 = 80 tokens, against the shipped 48.
    "s2t2_patch4": dict(
        vae=_vae(
            dim_mult=[1, 2], temperal_downsample=[True], scale_factor_spatial=2, scale_factor_temporal=2, z_dim=8
        ),
        transformer=dict(patch_size=(1, 4, 4), in_channels=8, out_channels=8),
    ),
}
# Frames per sample for designs that do not say.
DEFAULT_NUM_FRAMES = train_demo.NUM_FRAMES


def set_half_sizes(half_sizes: dict) -> float:
    """Renders and scores the world with other shape sizes (in place, for this process); the detectors' ground-truth
    accuracy at those sizes."""
    from univigu_hf.shapes import detection, scoring, world

    world.HALF_SIZES.update(half_sizes)
    detection._SIZE_THRESHOLD = float(np.sqrt(half_sizes["small"] * half_sizes["large"]))
    clips = list(
        shapes.generate_clips(240, seed=7, split="all", num_frames=train_demo.NUM_FRAMES, size=train_demo.SIZE)
    )
    return scoring.score_videos([c.frames for c in clips], [c.attributes.to_dict() for c in clips])["accuracy"]


def training_prompts() -> list[str]:
    """One training combination per (shape, color): each held-out prompt with the other size."""
    other = {"small": "large", "large": "small"}
    prompts = []
    for prompt in shapes.HELD_OUT_PROMPTS:
        words = prompt.split()
        words[1] = other[words[1]]
        prompts.append(" ".join(words))
    assert not set(prompts) & set(shapes.HELD_OUT_PROMPTS)
    return prompts


@torch.no_grad()
def score(
    pipe,
    prompts: list[str],
    seeds: int,
    batch_size: int = 24,
    num_frames: int = DEFAULT_NUM_FRAMES,
    num_inference_steps: int = 20,
) -> dict:
    requests = [(prompt, seed) for prompt in prompts for seed in range(seeds)]
    readings = []
    for start in range(0, len(requests), batch_size):
        chunk = requests[start : start + batch_size]
        out = pipe(
            [prompt for prompt, _ in chunk],
            height=train_demo.SIZE,
            width=train_demo.SIZE,
            num_frames=num_frames,
            num_inference_steps=num_inference_steps,
            guidance_scale=3.0,
            generator=[torch.Generator().manual_seed(10_000 + seed) for _, seed in chunk],
        )
        # A still is read as two identical frames (the detectors need motion to fit; its direction is not scored).
        readings.extend(
            detect_attributes(np.repeat(video, 2, axis=0) if len(video) == 1 else video) for video in out.frames
        )
    truth = [parse_caption(prompt) for prompt, _ in requests]
    result = {
        name: float(np.mean([r[name] == t[name] for r, t in zip(readings, truth)])) for name in PROMPT_ATTRIBUTES
    }
    result["shapes_drawn"] = {
        shape: sum(r["shape"] == shape for r in readings) for shape in ("circle", "square", "triangle", None)
    }
    result["shapes_drawn"] = {str(k): v for k, v in result["shapes_drawn"].items()}
    return result


class CurveCallback(TrainerCallback):
    """EMA of the trained weights and the two evaluations every `eval_every` steps."""

    def __init__(
        self,
        init_dir: Path,
        report: dict,
        path: Path,
        eval_every: int,
        seeds: int,
        ema_decay: float,
        num_frames: int = DEFAULT_NUM_FRAMES,
        save_dir: Path | None = None,
    ):
        self.num_frames = num_frames
        self.save_dir = save_dir
        self.report, self.path, self.eval_every, self.seeds, self.ema_decay = (
            report,
            path,
            eval_every,
            seeds,
            ema_decay,
        )
        self.pipe = UniViGUPipeline.from_wan(str(init_dir), max_text_length=train_demo.MAX_TEXT_LENGTH)
        self.pipe.set_progress_bar_config(disable=True)
        self.ema = None
        self.train_seconds, self._last = 0.0, None

    def on_step_begin(self, args, state, control, **kwargs):
        self._last = time.perf_counter()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.ema is None:
            self.ema = EMAModel(model.parameters(), decay=self.ema_decay, use_ema_warmup=True, power=2 / 3)
        self.ema.step(model.parameters())
        self.train_seconds += time.perf_counter() - self._last
        if state.global_step % self.eval_every == 0 or state.global_step == state.max_steps:
            self.evaluate(model, state.global_step, final=state.global_step == state.max_steps)

    def evaluate(self, model, step: int, final: bool = False):
        transformer = self.pipe.transformer
        transformer.load_state_dict(model.state_dict())
        transformer.eval()
        started = time.perf_counter()
        entry = {"step": step, "train_minutes": round(self.train_seconds / 60, 2)}
        entry["raw"] = {"held_out": score(self.pipe, shapes.HELD_OUT_PROMPTS, self.seeds, num_frames=self.num_frames)}
        entry["raw"]["training"] = score(self.pipe, training_prompts(), self.seeds, num_frames=self.num_frames)
        if self.save_dir is not None and final:
            transformer.save_pretrained(self.save_dir / "transformer_raw")  # for probing after the run
        self.ema.copy_to(transformer.parameters())
        entry["ema"] = {"held_out": score(self.pipe, shapes.HELD_OUT_PROMPTS, self.seeds, num_frames=self.num_frames)}
        entry["ema"]["training"] = score(self.pipe, training_prompts(), self.seeds, num_frames=self.num_frames)
        if self.save_dir is not None and final:
            transformer.save_pretrained(self.save_dir / "transformer_ema")
        entry["eval_seconds"] = round(time.perf_counter() - started, 1)
        self.report["curve"].append(entry)
        self.path.write_text(json.dumps(self.report, indent=2))
        brief = {k: (entry[k]["held_out"]["shape"], entry[k]["training"]["shape"]) for k in ("raw", "ema")}
        print(f"[curve] step {step} ({entry['train_minutes']} min): shape held-out/training {brief}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--design", choices=sorted(DESIGNS), required=True)
    parser.add_argument("--work_dir", required=True)
    parser.add_argument("--data_dir", default=None, help="Exported training clips (default: <work_dir>/data).")
    parser.add_argument("--num_clips", type=int, default=2400, help="Training clips when exporting them.")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--eval_every", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=4, help="Samples per prompt at each evaluation.")
    parser.add_argument("--ema_decay", type=float, default=0.999)
    parser.add_argument("--vae_steps", type=int, default=2000)
    parser.add_argument("--decoder_steps", type=int, default=600)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--stop_after_vae",
        action="store_true",
        help="Train (or load) the design's VAE, report its round trip and stop: the VAE stage as its own run.",
    )
    parser.add_argument("--transformer", default="{}", help="JSON overrides of the transformer config.")
    parser.add_argument(
        "--train_args",
        default="",
        help="Extra flags of the base stage, e.g. '--video_foreground_weight 4 --video_time_shift 1'.",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    design = DESIGNS[args.design]
    work_dir = Path(args.work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    data_dir = Path(args.data_dir).resolve() if args.data_dir else work_dir / "data"
    report = {"design": args.design, "args": vars(args), "timings_s": {}, "curve": []}
    if "half_sizes" in design:
        report["half_sizes"] = design["half_sizes"]
        report["detectors_on_ground_truth"] = set_half_sizes(design["half_sizes"])
        print(f"[curve] detectors on ground truth {json.dumps(report['detectors_on_ground_truth'])}", flush=True)
    if not (data_dir / "metadata.jsonl").is_file():
        shapes.export_folder(
            data_dir, args.num_clips, 0, "train", train_demo.NUM_FRAMES, train_demo.SIZE, train_demo.FPS
        )
    started = time.perf_counter()
    if design["vae"] is None:
        vae = AutoencoderKLWan.from_pretrained(DEFAULT_MODEL, subfolder="vae")
    elif (work_dir / "vae_refined").is_dir():
        vae = AutoencoderKLWan.from_pretrained(work_dir / "vae_refined")
    else:
        clips = train_demo.clips_as_dataset(2000, seed=1000)
        if (work_dir / "vae").is_dir():  # a run stopped during the decoder refinement resumes there
            vae = AutoencoderKLWan.from_pretrained(work_dir / "vae")
        else:
            vae = train_demo.train_vae(work_dir, clips, args.vae_steps, 0, config=design["vae"])
        vae = train_demo.refine_vae_decoder(work_dir, vae, clips, args.decoder_steps, 0)
    report["timings_s"]["vae"] = round(time.perf_counter() - started, 1)
    report["vae_round_trip"] = train_demo.reconstruction_quality(vae)
    print(f"[curve] VAE round trip {json.dumps(report['vae_round_trip'])}", flush=True)
    if args.stop_after_vae:
        (work_dir / "vae_report.json").write_text(json.dumps(report, indent=2))
        return 0
    transformer = {**train_demo.TRANSFORMER, **design["transformer"], **json.loads(args.transformer)}
    report["transformer"] = transformer
    init = train_demo.build_initial_wan(work_dir, vae, 0, transformer_config=transformer)
    path = work_dir / "curve.json"
    num_frames = design.get("num_frames", DEFAULT_NUM_FRAMES)
    callback = CurveCallback(init, report, path, args.eval_every, args.seeds, args.ema_decay, num_frames, work_dir)
    argv = train_demo.stage_argv("base.yaml", init, data_dir, work_dir / "base", args.steps, ["--seed", "0"])
    argv += ["--save_strategy", "no", "--learning_rate", str(args.learning_rate)]
    argv += ["--prepared_data_dir", str(work_dir / "prepared")]  # latents of this design's VAE
    if num_frames != DEFAULT_NUM_FRAMES:
        argv += ["--num_frames", str(num_frames)]  # the first frames of the exported clips
    argv += args.train_args.split()
    start = time.perf_counter()
    report["base_metrics"] = run("base", argv, callbacks=[callback])
    report["timings_s"]["base_with_evaluations"] = round(time.perf_counter() - start, 1)
    path.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
