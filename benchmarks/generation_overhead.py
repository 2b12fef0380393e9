"""Generation overhead: UniViGU vs diffusers' Wan on the same weights, side by side in one run.

1. One denoising step (one transformer forward with Wan's 512-token prompt) of `WanTransformer3DModel`, of
   `UniViGUModel` with no text stream, and of `UniViGUModel` with a 256-token prompt stream (what
   `generate_video` runs), at several video token counts of the mid-size config.
2. Whole `UniViGUPipeline.generate_video` (text stream off and on) vs `WanPipeline` (CFG, decode included).

Goal: <= 1.03x with the stream off.

    python benchmarks/generation_overhead.py --output docs/results/generation_overhead.json
    python benchmarks/generation_overhead.py --quick      # seconds-long smoke run
"""

import numpy as np
import torch
from _common import (
    MID_SIZE,
    MID_SIZE_TEXT_VOCAB,
    PROMPT_LENGTH,
    QUICK_SIZE,
    QUICK_TEXT_VOCAB,
    build_models,
    build_pipelines,
    compare_seconds,
    environment,
    latent_shape,
    parser,
    pixel_size,
)
from _report import emit


GOAL_STREAM_OFF = 1.03


def step_overhead(config, vocab, token_counts, text_length, repeats, device) -> list[dict]:
    wan, model = build_models(config, vocab, device)
    prompt = torch.randn(1, PROMPT_LENGTH, config["text_dim"], device=device)
    timestep = torch.tensor([500.0], device=device)
    text = torch.randint(0, vocab, (1, text_length), device=device)
    rows = []
    for tokens in token_counts:
        latents = torch.randn(1, 16, *latent_shape(tokens), device=device)
        with torch.no_grad():
            seconds = compare_seconds(
                {
                    "wan": lambda latents=latents: wan(latents, timestep, prompt),
                    "stream_off": lambda latents=latents: model(
                        video_latents=latents, video_timestep=timestep, encoder_hidden_states=prompt
                    ),
                    # generate_video's stream: the clean prompt tokens at text time 0.
                    "stream_on": lambda latents=latents: model(
                        latents, text, timestep, torch.zeros(1, device=device), prompt
                    ),
                },
                repeats,
                device,
            )
        rows.append(
            {
                "video_tokens": tokens,
                "text_tokens": text_length,
                "wan_step_s": round(seconds["wan"], 5),
                "stream_off_step_s": round(seconds["stream_off"], 5),
                "stream_on_step_s": round(seconds["stream_on"], 5),
                "stream_off_over_wan": round(seconds["stream_off"] / seconds["wan"], 3),
                "stream_on_over_wan": round(seconds["stream_on"] / seconds["wan"], 3),
            }
        )
    return rows


def pipeline_overhead(config, vocab, tokens, steps, text_length, repeats, device) -> dict:
    wan, unified = build_pipelines(config, vocab, device, max_text_length=text_length)
    size = pixel_size(tokens)
    common = dict(prompt="a red circle moving left", num_inference_steps=steps, guidance_scale=5.0, **size)

    def seeded():
        return torch.Generator(device).manual_seed(0)

    for call in (wan, unified.generate_video):  # warm-up at this size
        call(**{**common, "num_inference_steps": 1}, generator=seeded())
    seconds = compare_seconds(
        {
            "WanPipeline": lambda: wan(**common, generator=seeded()),
            "generate_video_stream_off": lambda: unified.generate_video(
                **common, use_text_stream=False, generator=seeded()
            ),
            "generate_video_stream_on": lambda: unified.generate_video(**common, generator=seeded()),
        },
        repeats,
        device,
        warmup=0,
    )
    reference = wan(**common, generator=seeded()).frames
    ours = unified.generate_video(**common, use_text_stream=False, generator=seeded()).frames
    return {
        "video_tokens": tokens,
        "video": size,
        "steps": steps,
        "cfg": True,
        "prompt_stream_tokens": text_length,
        "seconds": {name: round(value, 4) for name, value in seconds.items()},
        "stream_off_over_wan": round(seconds["generate_video_stream_off"] / seconds["WanPipeline"], 3),
        "stream_on_over_wan": round(seconds["generate_video_stream_on"] / seconds["WanPipeline"], 3),
        "stream_off_max_abs_diff_vs_WanPipeline": float(np.abs(reference - ours).max()),
    }


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--repeats", type=int, default=10)
    args_parser.add_argument("--token-counts", type=int, nargs="+", default=[1024, 2048, 4096])
    args_parser.add_argument("--text-length", type=int, default=256, help="prompt-stream tokens (official: 256)")
    args_parser.add_argument("--pipeline-tokens", type=int, default=1024)
    args_parser.add_argument("--pipeline-steps", type=int, default=5)
    args_parser.add_argument("--pipeline-repeats", type=int, default=3)
    args = args_parser.parse_args()
    config, vocab = (QUICK_SIZE, QUICK_TEXT_VOCAB) if args.quick else (MID_SIZE, MID_SIZE_TEXT_VOCAB)
    if args.quick:
        args.repeats, args.token_counts, args.text_length = 2, [64, 128], 16
        args.pipeline_tokens, args.pipeline_steps, args.pipeline_repeats = 64, 2, 1

    steps = step_overhead(config, vocab, args.token_counts, args.text_length, args.repeats, args.device)
    pipeline = pipeline_overhead(
        config, vocab, args.pipeline_tokens, args.pipeline_steps, args.text_length, args.pipeline_repeats, args.device
    )
    worst = max(row["stream_off_over_wan"] for row in steps)
    results = {
        "benchmark": "generation_overhead",
        "quick": args.quick,
        **environment(args.device),
        "config": {**config, "text_vocab_size": vocab, "prompt_tokens": PROMPT_LENGTH},
        "denoising_step": steps,
        "generate_video_vs_WanPipeline": pipeline,
        "goal_stream_off_over_wan": GOAL_STREAM_OFF,
        "worst_step_stream_off_over_wan": worst,
        "goal_met": None
        if args.quick
        else worst <= GOAL_STREAM_OFF and pipeline["stream_off_over_wan"] <= GOAL_STREAM_OFF,
    }
    emit(results, args.output)


if __name__ == "__main__":
    main()
