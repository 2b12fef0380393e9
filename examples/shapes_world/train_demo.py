"""Trains the embedded default model (`univigu_hf.DEFAULT_MODEL`) end to end on the shapes world: `make train-demo`.

Stage 0 builds a tiny Wan2.1 text-to-video base from scratch: a word-level tokenizer trained on the world's text, a
small frozen UMT5 prompt encoder, a small `AutoencoderKLWan` trained with `AutoencoderTrainer` (then its decoder alone,
with an edge term, the encoder and so every latent frozen), and a `WanTransformer3DModel` trained on prompts -> videos with `examples/train_base.py`'s code path. Stage 1 grows it into
Uni-ViGU (`UniViGUPipeline.from_wan`) and runs Knowledge Recall; stage 2 runs Capability Refinement on the detailed
captions. Stages 0-2 use `univigu_hf.training.script.run`, the function behind `examples/train_*.py`, with the YAML
configs next to this file. Everything is seeded; on a 2-core CPU it takes about 81 minutes.

    python examples/shapes_world/train_demo.py --work_dir runs/shapes --install
    python examples/shapes_world/train_demo.py --work_dir /tmp/smoke --quick          # a minutes-long smoke run

`--install` copies the final pipeline to `src/univigu_hf/shapes/default_model/` (package data).
"""

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast, TrainingArguments, UMT5Config, UMT5EncoderModel, set_seed

from univigu_hf import UniViGUPipeline, shapes
from univigu_hf.shapes.autoencoder import AutoencoderTrainer, latent_statistics
from univigu_hf.testing import tiny_wan_config
from univigu_hf.training.script import run


HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PACKAGE_MODEL_DIR = ROOT / "src" / "univigu_hf" / "shapes" / "default_model"
SAMPLE_VIDEO = ROOT / "src" / "univigu_hf" / "shapes" / "assets" / "shapes_sample.mp4"
SAMPLE_SEED = 20261121  # never used for training data
SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")

# Sizes of the shipped model (the pipeline must stay under 25 MB).
NUM_FRAMES, SIZE, FPS = 9, 32, 8
MAX_TEXT_LENGTH = 20  # the longest caption is 18 words + </s>
TEXT_ENCODER = dict(d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4)
VAE = dict(
    base_dim=16,
    z_dim=16,
    dim_mult=[1, 2, 2],
    num_res_blocks=1,
    temperal_downsample=[True, True],
    scale_factor_spatial=4,
)
TRANSFORMER = tiny_wan_config(
    num_attention_heads=4,
    attention_head_dim=32,
    text_dim=TEXT_ENCODER["d_model"],
    freq_dim=64,
    ffn_dim=512,
    num_layers=4,
    rope_max_seq_len=64,
)
PIPELINE_DEFAULTS = dict(
    default_height=SIZE,
    default_width=SIZE,
    default_num_frames=NUM_FRAMES,
    default_num_inference_steps=20,
    default_guidance_scale=3.0,
    default_fps=FPS,
)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer trained on every text of the world (lower-cased, punctuation split off)."""
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(shapes.world_text(), trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS)))
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words with spaces, tidies punctuation
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=512
    )


def build_text_encoder(vocab_size: int, seed: int) -> UMT5EncoderModel:
    """A small UMT5 encoder. Like Wan's umT5 it stays frozen; here it is never pretrained (fixed random features)."""
    set_seed(seed)
    config = UMT5Config(vocab_size=vocab_size, relative_attention_num_buckets=8, **TEXT_ENCODER)
    return UMT5EncoderModel(config).eval()


def clips_as_dataset(num_clips: int, seed: int):
    return shapes.shapes_dataset(num_clips, seed=seed, split="train", num_frames=NUM_FRAMES, size=SIZE)


def vae_training_args(
    output_dir: Path, steps: int, learning_rate: float, warmup_steps: int, seed: int, device: str = "cpu"
):
    """The `TrainingArguments` of both VAE steps: batch 8, cosine schedule, no checkpoints, on `device`."""
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=8,
        max_steps=steps,
        learning_rate=learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=warmup_steps,
        weight_decay=0.0,
        logging_steps=max(1, steps // 20),
        save_strategy="no",
        report_to="none",
        use_cpu=device == "cpu",
        seed=seed,
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )


def train_vae(
    work_dir: Path, dataset, steps: int, seed: int, config: dict = VAE, device: str = "cpu"
) -> AutoencoderKLWan:
    """Trains a VAE of `config` on world clips (`dataset`, train split) and sets its latent statistics."""
    set_seed(seed)
    vae = AutoencoderKLWan(**config, latents_mean=[0.0] * config["z_dim"], latents_std=[1.0] * config["z_dim"])
    args = vae_training_args(
        work_dir / "vae_trainer", steps, 2e-3, warmup_steps=min(50, steps // 10), seed=seed, device=device
    )
    # Foreground weighting: with plain MSE the VAE settles in the "background only" minimum (see AutoencoderTrainer).
    trainer = AutoencoderTrainer(model=vae, args=args, train_dataset=dataset, kl_weight=1e-6, foreground_weight=20.0)
    trainer.train()
    vae.eval()
    mean, std = latent_statistics(vae, dataset["video"][: min(len(dataset), 512)])
    vae.register_to_config(latents_mean=mean, latents_std=std)
    vae.save_pretrained(work_dir / "vae")
    return vae


def refine_vae_decoder(
    work_dir: Path, vae: AutoencoderKLWan, dataset, steps: int, seed: int, device: str = "cpu"
) -> AutoencoderKLWan:
    """Trains the decoder alone with the L1 edge term added. The encoder is frozen, so every latent (and everything
    trained on them) stays exactly the same; only the rendering of the latents sharpens."""
    set_seed(seed)
    vae.train()
    vae.encoder.requires_grad_(False)
    vae.quant_conv.requires_grad_(False)
    args = vae_training_args(
        work_dir / "vae_decoder_trainer", steps, 1e-3, warmup_steps=min(30, steps // 10), seed=seed, device=device
    )
    # Squared error alone leaves soft edges: small squares and triangles come back as blobs, sizes come back wrong.
    trainer = AutoencoderTrainer(
        model=vae,
        args=args,
        train_dataset=dataset,
        kl_weight=1e-6,
        foreground_weight=20.0,
        gradient_weight=1.0,
        sample_posterior=False,  # the posterior mean: the latents the transformer is trained on and generates
    )
    trainer.train()
    vae.requires_grad_(True)
    vae.eval()
    vae.save_pretrained(work_dir / "vae_refined")
    return vae


@torch.no_grad()
def reconstruction_quality(vae: AutoencoderKLWan, num_clips: int = 96) -> dict:
    """The detectors' accuracy on VAE round trips of unseen clips: the ceiling of what the model can show."""
    from univigu_hf.shapes.scoring import score_videos

    clips = list(shapes.generate_clips(num_clips, seed=999, split="all", num_frames=NUM_FRAMES, size=SIZE))
    video = torch.from_numpy(np.stack([clip.frames for clip in clips])).permute(0, 4, 1, 2, 3) * 2 - 1
    video = video.to(vae.device)
    reconstruction = vae.decode(vae.encode(video).latent_dist.mode()).sample.clamp(-1, 1)
    frames = ((reconstruction + 1) / 2).permute(0, 2, 3, 4, 1).cpu().numpy()
    scores = score_videos(list(frames), [clip.attributes.to_dict() for clip in clips])
    return {"mse": float((reconstruction - video).pow(2).mean()), "detector_accuracy": scores["accuracy"]}


def build_initial_wan(
    work_dir: Path, vae: AutoencoderKLWan, seed: int, transformer_config: dict = TRANSFORMER
) -> Path:
    """The untrained stage-0 Wan pipeline: trained VAE and tokenizer, frozen encoder, random transformer."""
    tokenizer = build_tokenizer()
    text_encoder = build_text_encoder(len(tokenizer), seed)
    set_seed(seed)
    transformer = WanTransformer3DModel(**transformer_config)
    wan = WanPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
    )
    target = work_dir / "stage0_init"
    wan.save_pretrained(target)
    return target


def stage_argv(config: str, init_from: Path, data_dir: Path, output_dir: Path, steps: int, extra=()) -> list[str]:
    argv = ["--config", str(HERE / "configs" / config), "--init_from", str(init_from)]
    argv += ["--dataset_name", str(data_dir), "--output_dir", str(output_dir), "--max_steps", str(steps)]
    argv += ["--prepared_data_dir", str(data_dir.parent / "prepared")]
    return argv + list(extra)


def finalize(source: Path, target: Path) -> dict:
    """Writes the final pipeline with the demo defaults (and the training record of every stage, which its model card
    reads: `univigu card` / `univigu push`), and returns its size."""
    pipeline = UniViGUPipeline.from_pretrained(source)
    pipeline.register_to_config(**PIPELINE_DEFAULTS)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pipeline.save_pretrained(tmp)
    if (source / "training_summary.json").is_file():
        shutil.copy(source / "training_summary.json", tmp / "training_summary.json")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    size = sum(path.stat().st_size for path in target.rglob("*") if path.is_file())
    return {"path": str(target), "bytes": size}


def write_sample_video(path: Path) -> dict:
    """The shipped sample clip: a held-out combination rendered with a seed no training stage uses."""
    from diffusers.utils import export_to_video

    clip = next(shapes.generate_clips(1, seed=SAMPLE_SEED, split="held_out", num_frames=NUM_FRAMES, size=SIZE))
    path.parent.mkdir(parents=True, exist_ok=True)
    export_to_video(list(clip.frames), str(path), fps=FPS, macro_block_size=1)
    return {"prompt": clip.prompt, "caption": clip.caption}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work_dir", default="runs/shapes_world", help="Where every stage writes its output.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_clips", type=int, default=2400, help="Training clips (train split, seed 0).")
    parser.add_argument("--vae_clips", type=int, default=2000)
    parser.add_argument("--vae_steps", type=int, default=2000)
    parser.add_argument(
        "--decoder_steps", type=int, default=600, help="Decoder-only steps with the edge term, after the VAE."
    )
    parser.add_argument("--base_steps", type=int, default=2000)
    parser.add_argument("--recall_steps", type=int, default=1500)
    parser.add_argument("--refine_steps", type=int, default=2600)
    parser.add_argument(
        "--skip_recall", action="store_true", help="Ablation: Capability Refinement alone, straight from the base."
    )
    parser.add_argument(
        "--data_dir",
        default=None,
        help="The exported training clips (default: <work_dir>/data/train; reused if present).",
    )
    parser.add_argument(
        "--base_dir",
        default=None,
        help="Reuse a finished stage-0 WanPipeline (e.g. runs/shapes_world/base) instead of training the VAE and base.",
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="Where every stage trains (cuda: one GPU)."
    )
    parser.add_argument("--quick", action="store_true", help="A tiny smoke run (a few steps per stage).")
    parser.add_argument("--install", action="store_true", help=f"Copy the result to {PACKAGE_MODEL_DIR}.")
    args = parser.parse_args(argv)
    if args.quick:
        args.num_clips, args.vae_clips, args.vae_steps, args.decoder_steps = 64, 32, 4, 4
        args.base_steps, args.recall_steps, args.refine_steps = 4, 4, 4
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    work_dir = Path(args.work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    timings, started = {}, time.perf_counter()

    def timed(name, function, *function_args):
        start = time.perf_counter()
        result = function(*function_args)
        timings[name] = round(time.perf_counter() - start, 1)
        print(f"[train-demo] {name}: {timings[name]} s", flush=True)
        return result

    data_dir = Path(args.data_dir).resolve() if args.data_dir else work_dir / "data" / "train"
    if not (data_dir / "metadata.jsonl").is_file():
        timed("export_data", shapes.export_folder, data_dir, args.num_clips, args.seed, "train", NUM_FRAMES, SIZE, FPS)
    stage_flags = ["--seed", str(args.seed)]
    if args.device != "cpu":  # the stage configs say `use_cpu: true`
        stage_flags += ["--use_cpu", "false"]
    metrics = {}
    if args.base_dir is None:
        vae_clips = clips_as_dataset(args.vae_clips, seed=args.seed + 1000)  # shared by both VAE steps
        vae = timed("vae", train_vae, work_dir, vae_clips, args.vae_steps, args.seed, VAE, args.device)
        metrics["vae_reconstruction_before_decoder_refinement"] = reconstruction_quality(vae)
        vae = timed(
            "vae_decoder", refine_vae_decoder, work_dir, vae, vae_clips, args.decoder_steps, args.seed, args.device
        )
        metrics["vae_reconstruction"] = reconstruction_quality(vae)
        print(f"[train-demo] VAE round trip: {json.dumps(metrics['vae_reconstruction'])}", flush=True)
        init = build_initial_wan(work_dir, vae, args.seed)
        base = work_dir / "base"
        argv = stage_argv("base.yaml", init, data_dir, base, args.base_steps, stage_flags)
        metrics["base"] = timed("base", run, "base", argv)
    else:
        base = Path(args.base_dir).resolve()
    refine_init = base
    if not args.skip_recall:
        recall = work_dir / "recall"
        argv = stage_argv("recall.yaml", base, data_dir, recall, args.recall_steps, stage_flags)
        metrics["recall"] = timed("recall", run, "recall", argv)
        refine_init = recall
    refine = work_dir / "refine"
    refine_steps = args.refine_steps + (args.recall_steps if args.skip_recall else 0)  # same total budget
    argv = stage_argv("refine.yaml", refine_init, data_dir, refine, refine_steps, stage_flags)
    metrics["refine"] = timed("refine", run, "refine", argv)
    final = timed("finalize", finalize, refine, work_dir / "pipeline")
    timings["total"] = round(time.perf_counter() - started, 1)
    report = {"args": vars(args), "timings_s": timings, "final_metrics": metrics, "pipeline": final}
    (work_dir / "train_demo_report.json").write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps({"timings_s": timings, "pipeline": final}, indent=2))
    if args.install:
        shutil.rmtree(PACKAGE_MODEL_DIR, ignore_errors=True)
        shutil.copytree(work_dir / "pipeline", PACKAGE_MODEL_DIR)
        shutil.copy(work_dir / "train_demo_report.json", PACKAGE_MODEL_DIR / "train_demo_report.json")
        write_sample_video(SAMPLE_VIDEO)
        print(f"[train-demo] installed into {PACKAGE_MODEL_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
