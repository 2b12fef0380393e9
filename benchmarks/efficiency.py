"""Efficiency: achieved FLOP/s of a mid-size `UniViGUModel` forward vs this machine's measured matmul peak.

FLOPs are counted with `torch.utils.flop_counter.FlopCounterMode` (matmuls, convolutions and attention, including
the CPU attention kernel that torch's table lacks); the peak is the best of square fp32 matmuls of a few sizes.

    python benchmarks/efficiency.py --output docs/results/efficiency.json
    python benchmarks/efficiency.py --quick      # seconds-long smoke run
"""

import time

import torch
from _common import (
    MID_SIZE,
    MID_SIZE_TEXT_VOCAB,
    PROMPT_LENGTH,
    QUICK_SIZE,
    QUICK_TEXT_VOCAB,
    build_models,
    compare_seconds,
    environment,
    latent_shape,
    parser,
    synchronize,
)
from _report import emit
from torch.utils import flop_counter


def _cpu_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


# torch's FLOP table has the CUDA attention kernels; the CPU one computes the same two matmuls.
CPU_ATTENTION = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops}


def matmul_peak(sizes: list[int], repeats: int, device: str) -> dict:
    """Best achieved FLOP/s of `n x n @ n x n` fp32 matmuls."""
    best = {}
    for n in sizes:
        a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
        a @ b
        seconds = []
        for _ in range(repeats):
            synchronize(device)
            start = time.perf_counter()
            a @ b
            synchronize(device)
            seconds.append(time.perf_counter() - start)
        best[n] = 2 * n**3 / min(seconds)
    size = max(best, key=best.get)
    return {"flops_per_s": best[size], "at_size": size, "by_size": {n: round(f / 1e9, 2) for n, f in best.items()}}


def count_flops(function) -> int:
    with flop_counter.FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION) as counter:
        function()
    return counter.get_total_flops()


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--video-tokens", type=int, default=2048)
    args_parser.add_argument("--text-length", type=int, default=256)
    args_parser.add_argument("--repeats", type=int, default=5)
    args = args_parser.parse_args()
    config, vocab = (QUICK_SIZE, QUICK_TEXT_VOCAB) if args.quick else (MID_SIZE, MID_SIZE_TEXT_VOCAB)
    sizes = [256, 512] if args.quick else [1024, 2048, 4096]
    if args.quick:
        args.video_tokens, args.text_length, args.repeats = 128, 16, 2
    device = args.device

    peak = matmul_peak(sizes, repeats=3 if args.quick else 5, device=device)
    _, model = build_models(config, vocab, device)
    latents = torch.randn(1, 16, *latent_shape(args.video_tokens), device=device)
    prompt = torch.randn(1, PROMPT_LENGTH, config["text_dim"], device=device)
    text = torch.randint(0, vocab, (1, args.text_length), device=device)
    forwards = {
        "video_only": lambda: model(video_latents=latents, video_timestep=500.0, encoder_hidden_states=prompt),
        "joint": lambda: model(latents, text, 500.0, 500.0, prompt),
    }
    with torch.no_grad():
        flops = {name: count_flops(function) for name, function in forwards.items()}
        seconds = compare_seconds(forwards, args.repeats, device)
    rows = {}
    for name in forwards:
        achieved = flops[name] / seconds[name]
        rows[name] = {
            "gflop": round(flops[name] / 1e9, 3),
            "seconds": round(seconds[name], 5),
            "achieved_gflops_per_s": round(achieved / 1e9, 2),
            "fraction_of_matmul_peak": round(achieved / peak["flops_per_s"], 3),
        }
    results = {
        "benchmark": "efficiency",
        "quick": args.quick,
        **environment(device),
        "dtype": "float32",
        "config": {**config, "text_vocab_size": vocab, "prompt_tokens": PROMPT_LENGTH},
        "video_tokens": args.video_tokens,
        "text_tokens": args.text_length,
        "matmul_peak_gflops_per_s": round(peak["flops_per_s"] / 1e9, 2),
        "matmul_peak_by_size_gflops_per_s": peak["by_size"],
        "forward": rows,
    }
    emit(results, args.output)


if __name__ == "__main__":
    main()
