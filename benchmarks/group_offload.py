"""Group offloading of UniViGUModel: peak memory of a joint denoising step with and without it, side by side.

Each mode runs in a fresh process on the same saved model (Wan2.1-1.3B's width and FFN, 4 blocks, about 1.5 GB in
fp32): load it, apply the mode, run one warm-up step (disk offloading writes its files then), reset the peak and
time two steps. The peak is what matters for the device the weights are kept off:
- on CPU: the process's peak resident memory during the steps (`VmHWM` after `/proc/self/clear_refs`). There the
  weights can only leave memory for a disk (`offload_to_disk_path`); CPU-to-CPU offloading moves nothing.
- on CUDA (`--device cuda`): `torch.cuda.max_memory_allocated`, for block and leaf level, from CPU memory, with
  and without streams.

    python benchmarks/group_offload.py --output docs/results/group_offload.json
    python benchmarks/group_offload.py --quick
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch
from _common import QUICK_SIZE, QUICK_TEXT_VOCAB, WAN21_T2V_1_3B, build_models, environment, parser
from _report import emit

from univigu_hf import UniViGUModel


FULL_WIDTH = {**WAN21_T2V_1_3B, "num_layers": 4}
TEXT_VOCAB = 4096
CPU_MODES = ("none", "block_level_disk", "leaf_level_disk")
CUDA_MODES = ("none", "block_level", "block_level_stream", "leaf_level", "leaf_level_stream", "block_level_disk")


def offload_kwargs(mode: str, disk_folder: str) -> dict | None:
    """`enable_group_offload` arguments of a mode (`None`: no offloading)."""
    if mode == "none":
        return None
    offload_type = "block_level" if mode.startswith("block_level") else "leaf_level"
    kwargs = {"offload_type": offload_type, "offload_device": torch.device("cpu")}
    if offload_type == "block_level":
        kwargs["num_blocks_per_group"] = 1
    if mode.endswith("_stream"):
        kwargs["use_stream"] = True
    if mode.endswith("_disk"):
        kwargs["offload_to_disk_path"] = disk_folder
    return kwargs


def peak_rss_mb() -> float:
    with open("/proc/self/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    else:
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as handle:
            handle.write("5")  # resets VmHWM to the current resident size


def child(mode: str, folder: str, device: str, video_tokens: int, text_tokens: int) -> dict:
    """One mode in this process: load, apply, warm up, then the measured steps."""
    model = UniViGUModel.from_pretrained(folder).eval()
    with tempfile.TemporaryDirectory() as disk:
        kwargs = offload_kwargs(mode, disk)
        if kwargs is None:
            model.to(device)
        else:
            model.enable_group_offload(torch.device(device), **kwargs)
        config = model.config
        generator = torch.Generator().manual_seed(0)
        side = int((video_tokens // 4) ** 0.5)
        inputs = {
            "video_latents": torch.randn(1, 16, 4, 2 * side, 2 * side, generator=generator),
            "text_ids": torch.randint(0, config.text_vocab_size, (1, text_tokens), generator=generator),
            "video_timestep": torch.tensor([500.0]),
            "text_timestep": torch.tensor([500.0]),
            "encoder_hidden_states": torch.randn(1, 512, config.text_dim, generator=generator),
        }
        inputs = {name: value.to(device) for name, value in inputs.items()}
        with torch.no_grad():
            model(**inputs)  # warm-up: disk offloading writes its files in the first pass
            reset_peak(device)
            start = time.perf_counter()
            for _ in range(2):
                out = model(**inputs)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds = (time.perf_counter() - start) / 2
        result = {
            "mode": mode,
            "step_seconds": round(seconds, 3),
            "checksum": float(out.video_velocity.double().sum()),
        }
        if device.startswith("cuda"):
            result["peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        else:
            result["peak_mb"] = round(peak_rss_mb(), 1)
    return result


def main() -> None:
    arguments = parser(__doc__.split("\n\n")[0])
    arguments.add_argument("--child", default=None, help=argparse.SUPPRESS)
    arguments.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    args = arguments.parse_args()
    video_tokens, text_tokens = (64, 8) if args.quick else (256, 32)
    if args.child:
        print(json.dumps(child(args.child, args.folder, args.device, video_tokens, text_tokens)))
        return
    config, vocab = (QUICK_SIZE, QUICK_TEXT_VOCAB) if args.quick else (FULL_WIDTH, TEXT_VOCAB)
    modes = CUDA_MODES if args.device.startswith("cuda") else CPU_MODES
    results = {"environment": environment(args.device), "quick": args.quick, "video_tokens": video_tokens,
               "text_tokens": text_tokens}  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        _, model = build_models(config, vocab, "cpu")
        results["parameters"] = sum(p.numel() for p in model.parameters())
        results["weights_mb"] = round(sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20, 1)
        model.save_pretrained(folder)
        del model
        runs = {}
        for mode in modes:
            command = [sys.executable, os.path.abspath(__file__), "--child", mode, "--folder", folder]
            command += ["--device", args.device] + (["--quick"] if args.quick else [])
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            runs[mode] = json.loads(output.strip().splitlines()[-1])
    base = runs["none"]
    reference = base["checksum"]
    for run in runs.values():
        run["peak_over_no_offload"] = round(run["peak_mb"] / base["peak_mb"], 3)
        run["time_over_no_offload"] = round(run["step_seconds"] / base["step_seconds"], 3)
        run["same_output"] = abs(run.pop("checksum") - reference) <= 1e-6 * max(1.0, abs(reference))
    results["modes"] = runs
    results["peak_measure"] = "torch.cuda.max_memory_allocated" if args.device.startswith("cuda") else "VmHWM"
    emit(results, args.output)


if __name__ == "__main__":
    main()
