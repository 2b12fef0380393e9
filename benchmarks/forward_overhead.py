"""Video-only forward of UniViGUModel vs diffusers' WanTransformer3DModel on the same weights, side by side.

Measures the cost of the unified model's video path (the prior-preservation path) and of adding caption tokens.
CPU by default; pass --device cuda on a GPU.

    python benchmarks/forward_overhead.py --output benchmarks/results/forward_overhead.json
"""

import argparse
import statistics
import time

import torch
from _report import emit
from diffusers import WanTransformer3DModel

from univigu_hf import UniViGUModel


def timed(fn, repeats: int, device: str) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--text-length", type=int, default=64)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()

    torch.manual_seed(0)
    config = dict(num_attention_heads=4, attention_head_dim=32, text_dim=64, ffn_dim=512, num_layers=4)
    wan = WanTransformer3DModel(**config).eval().to(args.device)
    model = UniViGUModel.from_wan(wan, text_vocab_size=1024).eval().to(args.device)
    latents = torch.randn(1, 16, 5, 16, 16, device=args.device)  # 5 x 8 x 8 = 320 video tokens
    timestep = torch.tensor([500.0], device=args.device)
    context = torch.randn(1, 32, 64, device=args.device)
    text = torch.randint(0, 1024, (1, args.text_length), device=args.device)

    with torch.no_grad():
        wan_s = timed(lambda: wan(latents, timestep, context), args.repeats, args.device)
        video_s = timed(
            lambda: model(video_latents=latents, video_timestep=timestep, encoder_hidden_states=context),
            args.repeats,
            args.device,
        )
        joint_s = timed(lambda: model(latents, text, timestep, timestep, context), args.repeats, args.device)
    results = {
        "device": args.device,
        "threads": torch.get_num_threads(),
        "video_tokens": 320,
        "text_tokens": args.text_length,
        "wan_forward_s": round(wan_s, 5),
        "univigu_video_only_forward_s": round(video_s, 5),
        "univigu_joint_forward_s": round(joint_s, 5),
        "video_only_over_wan": round(video_s / wan_s, 3),
        "joint_over_wan": round(joint_s / wan_s, 3),
    }
    emit(results, args.output)


if __name__ == "__main__":
    main()
