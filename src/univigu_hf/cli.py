"""The `univigu` command.

    univigu convert --checkpoint X.pth --wan-config DIR --output DIR   official checkpoint -> safetensors
    univigu demo                                                        the foundation demo (see `demo --help`)

Text-to-video, captioning and joint generation commands arrive with the pipeline (`UniViGUPipeline`).
"""

import argparse
import json
import sys
import time

import torch

from . import __version__


def _demo(args: argparse.Namespace) -> int:
    """
    Foundation demo: grows a unified model out of a (tiny, randomly initialised) Wan transformer, proves the video
    prior is preserved, and runs the unified flow in all three modes with the real scheduler. The weights are random,
    so the outputs carry no meaning yet; the embedded trained model replaces this demo when it lands.
    """
    from diffusers import WanTransformer3DModel

    from .modeling_univigu import UniViGUModel
    from .scheduling_uniflow import UniFlowScheduler

    torch.manual_seed(args.seed)
    wan = WanTransformer3DModel(
        num_attention_heads=2, attention_head_dim=16, text_dim=32, ffn_dim=64, num_layers=2, rope_max_seq_len=32
    ).eval()
    model = UniViGUModel.from_wan(wan, text_vocab_size=args.vocab_size, max_text_length=args.text_length)
    scheduler = UniFlowScheduler(shift=3.0, text_vocab_size=args.vocab_size)
    generator = torch.Generator().manual_seed(args.seed)
    latents = torch.randn(1, 16, 3, 8, 8, generator=generator)
    prompt_embeds = torch.randn(1, 8, 32, generator=generator)
    report = {"univigu_hf": __version__, "wan_parameters": sum(p.numel() for p in wan.parameters())}
    report["univigu_parameters"] = sum(p.numel() for p in model.parameters())

    with torch.no_grad():
        timestep = torch.tensor([700.0])
        expected = wan(latents, timestep, prompt_embeds).sample
        got = model(video_latents=latents, video_timestep=timestep, encoder_hidden_states=prompt_embeds).video_velocity
        report["prior_preservation_max_abs_diff"] = float((expected - got).abs().max())

        start = time.perf_counter()
        scheduler.set_timesteps(args.steps)
        video = latents.clone()
        prompt_ids = torch.randint(0, args.vocab_size, (1, args.text_length), generator=generator)
        for t in scheduler.timesteps:
            velocity = model(video, prompt_ids, t[None], torch.zeros(1), prompt_embeds).video_velocity
            video = scheduler.step(velocity, t, video).prev_sample
        report["text_to_video_seconds"] = round(time.perf_counter() - start, 3)

        start = time.perf_counter()
        scheduler.set_timesteps(args.steps, text_time_schedule="uniform")
        text = scheduler.sample_text_source((1, args.text_length), generator=generator)
        for t_text in scheduler.text_times[:-1]:
            timestep = scheduler.text_time_to_timestep(t_text)[None]
            logits = model(video, text, torch.zeros(1), timestep).text_logits
            text = scheduler.step_text(logits, t_text, text, generator=generator).prev_text_ids
        report["caption_token_ids"] = " ".join(map(str, text[0].tolist()))
        report["captioning_seconds"] = round(time.perf_counter() - start, 3)

        start = time.perf_counter()
        scheduler.set_timesteps(args.steps, text_time_schedule="video")
        video = torch.randn(1, 16, 3, 8, 8, generator=generator)
        text = scheduler.sample_text_source((1, args.text_length), generator=generator)
        for t, t_text in zip(scheduler.timesteps, scheduler.text_times[:-1]):
            out = model(video, text, t[None], scheduler.text_time_to_timestep(t_text)[None], prompt_embeds)
            video = scheduler.step(out.video_velocity, t, video).prev_sample
            text = scheduler.step_text(out.text_logits, t_text, text, generator=generator).prev_text_ids
        report["joint_seconds"] = round(time.perf_counter() - start, 3)
        report["joint_video_latent_std"] = round(float(video.std()), 4)

    print(json.dumps(report, indent=2))
    print(
        "Foundation demo OK: the unified model reproduces its Wan base and runs text->video, video->text and joint "
        "flows (random weights; the trained embedded model comes with the shapes-world release)."
    )
    return 0 if report["prior_preservation_max_abs_diff"] <= 1e-5 else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="univigu",
        description="Uni-ViGU on Hugging Face: unified video generation and captioning on Wan2.1.",
    )
    parser.add_argument("--version", action="version", version=f"univigu_hf {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    convert = commands.add_parser(
        "convert",
        help="convert an official Uni-ViGU .pth checkpoint to a safetensors UniViGUModel folder",
        add_help=False,
    )
    convert.set_defaults(handler=None)

    demo = commands.add_parser("demo", help="run the foundation demo on a tiny model (CPU, seconds)")
    demo.add_argument("--steps", type=int, default=8, help="denoising steps per mode (default: 8)")
    demo.add_argument("--text-length", type=int, default=16, help="caption tokens (default: 16)")
    demo.add_argument("--vocab-size", type=int, default=128, help="caption vocabulary of the tiny model")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `univigu` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "convert":
        from .convert import main as convert_main

        return convert_main(argv[1:], prog="univigu convert")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "demo":
        for name in ("steps", "text_length", "vocab_size"):
            if getattr(args, name) < 1:
                parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
