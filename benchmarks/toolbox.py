"""Regional compilation and int8 weight-only quantization of the mid-size UniViGUModel, side by side with eager fp32.

- One joint denoising step (1k video tokens, a 64-token caption, Wan's 512 x 4096 prompt): eager vs
  `compile_repeated_blocks(backend="inductor")`, timed in turns after the compile (its time reported apart), outputs
  compared, and the graphs captured after the first call counted (no recompilation expected).
- torchao int8 weight-only (`TorchAoConfig(Int8WeightOnlyConfig())` through `from_pretrained`): the linear weights'
  bytes vs fp32, the step time, and the outputs' mean relative difference.

    python benchmarks/toolbox.py --output docs/results/toolbox.json
    python benchmarks/toolbox.py --quick
"""

import tempfile
import time

import torch
from _common import (
    LATENT_FRAMES,
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
)
from _report import emit

from univigu_hf import UniViGUModel


def step_inputs(config: dict, vocab: int, video_tokens: int, text_tokens: int, device: str) -> dict:
    generator = torch.Generator().manual_seed(0)
    frames, height, width = latent_shape(video_tokens, LATENT_FRAMES)
    return {
        "video_latents": torch.randn(1, 16, frames, height, width, generator=generator).to(device),
        "text_ids": torch.randint(0, vocab, (1, text_tokens), generator=generator).to(device),
        "video_timestep": torch.tensor([500.0], device=device),
        "text_timestep": torch.tensor([500.0], device=device),
        "encoder_hidden_states": torch.randn(1, PROMPT_LENGTH, config["text_dim"], generator=generator).to(device),
    }


def linear_weight_bytes(model) -> int:
    total = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            weight = getattr(module.weight, "qdata", module.weight)  # torchao keeps int8 values in `qdata`
            total += weight.numel() * weight.element_size()
    return total


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().mean() / b.abs().mean())


def main() -> None:
    args = parser(__doc__.split("\n\n")[0]).parse_args()
    config, vocab = (QUICK_SIZE, QUICK_TEXT_VOCAB) if args.quick else (MID_SIZE, MID_SIZE_TEXT_VOCAB)
    video_tokens, text_tokens, repeats = (64, 16, 2) if args.quick else (1024, 64, 5)
    _, model = build_models(config, vocab, args.device)
    inputs = step_inputs(config, vocab, video_tokens, text_tokens, args.device)
    results = {"environment": environment(args.device), "quick": args.quick, "video_tokens": video_tokens,
               "text_tokens": text_tokens}  # fmt: skip

    def step(m):
        with torch.no_grad():
            return m(**inputs)

    reference = step(model)

    # Regional compilation.
    from torch._dynamo.utils import counters

    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        compiled = UniViGUModel.from_pretrained(folder).to(args.device).eval()
        quantized = None
        try:
            from torchao.quantization import Int8WeightOnlyConfig
            from transformers import TorchAoConfig

            quantized = UniViGUModel.from_pretrained(
                folder, quantization_config=TorchAoConfig(Int8WeightOnlyConfig())
            ).eval()
        except ImportError as error:
            results["int8_weight_only"] = {"skipped": f"torchao is not installed ({error})"}
    torch._dynamo.reset()
    counters.clear()
    compiled.compile_repeated_blocks(backend="inductor", fullgraph=True)
    start = time.perf_counter()
    first = step(compiled)
    compile_seconds = time.perf_counter() - start
    graphs_after_first = counters["stats"]["unique_graphs"]
    functions = {"eager": lambda: step(model), "regional_compile": lambda: step(compiled)}
    if quantized is not None:
        functions["int8_weight_only"] = lambda: step(quantized)
    seconds = compare_seconds(functions, repeats, args.device)
    results["regional_compile"] = {
        "first_call_seconds_with_compile": round(compile_seconds, 2),
        "step_seconds": round(seconds["regional_compile"], 4),
        "eager_step_seconds": round(seconds["eager"], 4),
        "speedup_over_eager": round(seconds["eager"] / seconds["regional_compile"], 3),
        "max_abs_diff_video": float((first.video_velocity - reference.video_velocity).abs().max()),
        "max_abs_diff_text_logits": float((first.text_logits - reference.text_logits).abs().max()),
        "graphs_after_first_call": graphs_after_first,
        "graphs_after_all_calls": counters["stats"]["unique_graphs"],
    }
    if quantized is not None:
        out = step(quantized)
        results["int8_weight_only"] = {
            "linear_weight_mb_fp32": round(linear_weight_bytes(model) / 2**20, 2),
            "linear_weight_mb_int8": round(linear_weight_bytes(quantized) / 2**20, 2),
            "weight_ratio": round(linear_weight_bytes(quantized) / linear_weight_bytes(model), 3),
            "step_seconds": round(seconds["int8_weight_only"], 4),
            "speed_over_eager_fp32": round(seconds["eager"] / seconds["int8_weight_only"], 3),
            "mean_relative_diff_video": round(relative(out.video_velocity, reference.video_velocity), 5),
            "mean_relative_diff_text_logits": round(relative(out.text_logits, reference.text_logits), 5),
        }
    torch._dynamo.reset()
    emit(results, args.output)


if __name__ == "__main__":
    main()
