"""Uni-ViGU at its real size on CPU (issue 37): build, save, convert, load and run the 1.3B model (3.05B parameters,
256,384-token caption vocabulary) and one block at 480x832x81, count the 14B, and check that bad inputs fail before
the model is allocated. Every section runs in a fresh subprocess; its peak RSS is that process's own
(`os.wait4` -> `ru_maxrss`), so sections do not inherit each other's peaks. Inside a section, phases are told apart by
resetting the kernel's peak counter (`/proc/self/clear_refs`, "5") and reading `VmHWM`.

Not part of CI or the test suite: it writes ~20 GB under `--workdir` and takes ~15-20 minutes on one CPU thread.

    OMP_NUM_THREADS=1 python benchmarks/real_size.py --output docs/results/real_size.json
    # a subset (results merge into an existing --output): --sections build_save,convert
    # --quick: the same code on a tiny model (seconds), for checking the script itself
    # on a GPU (benchmarks/gpu_check.sh): random bf16 weights built in memory, 4 steps per task at 480x832x81
    python benchmarks/real_size.py --device cuda --sections run_480p --threads 16 --output gpu_real_size.json
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time


HERE = os.path.dirname(os.path.abspath(__file__))
SECTIONS = ("build_save", "make_checkpoint", "convert", "load", "load_device_map", "run", "block_480p", "size_14b")
SECTIONS += ("bad_truncated_shard", "bad_missing_block", "bad_14b_as_1_3b", "run_480p")
# run_480p (whole 480x832x81 steps) is for a GPU (`--device cuda`): on one CPU thread a step takes over an hour.
DEFAULT_SECTIONS = tuple(s for s in SECTIONS if s != "run_480p")
TEXT_VOCAB_SIZE = 256384  # umT5's embedding rows (the issue's figure; the tokenizer's vocab_size is 256,300)
CAPTION_TOKENS = 256
PROMPT_TOKENS = 512  # Wan pads prompts to 512 umT5 tokens
SMALL_LATENTS = (5, 30, 52)  # 17 frames at 240x416 -> 5 x 15 x 26 = 1,950 video tokens
LATENTS_480P = (21, 60, 104)  # 81 frames at 480x832 -> 21 x 30 x 52 = 32,760 video tokens
GB = 1e9
NOTES = [
    "The official checkpoint is written in bf16 (6.1 GB) with an empty optimizer state: torch.load(mmap=True) never "
    "reads the optimizer, and an fp32 file (12.2 GB) would put the conversion's peak near this machine's memory.",
    "Text-to-video CFG runs two forwards one after the other (as WanPipeline); seconds_per_step is their sum.",
    "caption_video_cache_exact_cached is a text-only step against the cache (video_attends_text=False); the first "
    "step of 'exact' fills the cache and costs a full forward.",
    "block_480p and size_14b's block use random weights: one UniViGUTransformerBlock forward, not the model.",
]


# ---------------------------------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------------------------------
def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def peak_gb() -> float:
    """This process's peak RSS since start or the last `reset_peak()`, in GB."""
    return round(_status_kb("VmHWM") * 1024 / GB, 3)


def rss_gb() -> float:
    return round(_status_kb("VmRSS") * 1024 / GB, 3)


def reset_peak() -> None:
    """Resets `VmHWM` to the current RSS (Linux `clear_refs` 5)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:  # a sandboxed kernel (gVisor) may refuse it: the peak is then the process's since its start
        pass


class Phase:
    """Times a phase and records its peak RSS (reset at the start) into `into[name]`."""

    def __init__(self, into: dict, name: str):
        self.into, self.name = into, name

    def __enter__(self):
        import gc

        gc.collect()
        reset_peak()
        self.rss_before = rss_gb()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.into[self.name] = {
            "seconds": round(time.perf_counter() - self.start, 2),
            "rss_before_gb": self.rss_before,
            "peak_rss_gb": peak_gb(),
        }
        return False


# ---------------------------------------------------------------------------------------------------------------------
# Configurations
# ---------------------------------------------------------------------------------------------------------------------
def wan_config(size: str, quick: bool) -> dict:
    sys.path.insert(0, HERE)
    from _common import QUICK_SIZE, WAN21_T2V_1_3B

    if quick:
        return {**QUICK_SIZE, "text_dim": 4096} if size == "1.3b" else {**QUICK_SIZE, "num_attention_heads": 4}
    if size == "14b":
        return {**WAN21_T2V_1_3B, "num_attention_heads": 40, "ffn_dim": 13824, "num_layers": 40}
    return dict(WAN21_T2V_1_3B)


def univigu_config(args, size: str = "1.3b", **overrides):
    from univigu_hf import UniViGUConfig

    vocab = 512 if args.quick else TEXT_VOCAB_SIZE
    return UniViGUConfig(
        **wan_config(size, args.quick), text_vocab_size=vocab, max_text_length=CAPTION_TOKENS, **overrides
    )


def paths(args) -> dict:
    work = args.workdir
    return {
        "saved": os.path.join(work, "saved_bf16"),
        "checkpoint": os.path.join(work, "official.pth"),
        "wan_config": os.path.join(work, "wan_config.json"),
        "converted": os.path.join(work, "converted"),
        "bad": os.path.join(work, "bad"),
    }


def count_by_module(model) -> dict:
    from univigu_hf.models.wan_growth import is_text_parameter

    groups, total, text = {}, 0, 0
    for name, parameter in model.named_parameters():
        key = name.split(".")[0] if not name.startswith("blocks.") else "blocks.*." + name.split(".")[2]
        groups[key] = groups.get(key, 0) + parameter.numel()
        total += parameter.numel()
        text += parameter.numel() if is_text_parameter(name) else 0
    return {"total": total, "text_branch": text, "by_module": dict(sorted(groups.items()))}


def dtype_check(model) -> dict:
    """Whether `keeps_fp32` parameters are fp32 and every other floating parameter bf16."""
    import torch

    wrong, fp32_bytes, fp32_count = [], 0, 0
    for name, parameter in model.named_parameters():
        expected = torch.float32 if model.keeps_fp32(name) else torch.bfloat16
        if parameter.dtype != expected:
            wrong.append(f"{name}: {parameter.dtype}")
        if parameter.dtype == torch.float32:
            fp32_count += parameter.numel()
            fp32_bytes += parameter.numel() * 4
    return {"ok": not wrong, "wrong": wrong[:10], "fp32_parameters": fp32_count, "fp32_gb": round(fp32_bytes / GB, 3)}


# ---------------------------------------------------------------------------------------------------------------------
# Sections (each runs in its own process)
# ---------------------------------------------------------------------------------------------------------------------
def section_build_save(args) -> dict:
    import torch

    from univigu_hf import UniViGUModel

    result, config = {}, univigu_config(args)
    with torch.device("meta"):
        for label, ffn in (("full_text_ffn", None), ("text_ffn_1536", 1536)):
            counts = count_by_module(UniViGUModel(univigu_config(args, text_ffn_dim=ffn)))
            result[f"parameters_{label}"] = counts if label == "full_text_ffn" else counts["total"]
    phases = result["phases"] = {}
    with Phase(phases, "build"):
        # transformers' own mechanism: the module is constructed under the default dtype bfloat16, so no fp32 copy
        # ever exists; `_from_config` then puts the `_keep_in_fp32_modules_strict` back to fp32, as from_pretrained.
        model = UniViGUModel._from_config(config, dtype=torch.bfloat16).eval()
    result["dtypes"] = dtype_check(model)
    result["bf16_weights_gb"] = round(sum(p.numel() * p.element_size() for p in model.parameters()) / GB, 3)
    saved = paths(args)["saved"]
    shutil.rmtree(saved, ignore_errors=True)
    with Phase(phases, "save"):
        model.save_pretrained(saved, max_shard_size="2GB", variant="bf16")
    files = sorted(os.listdir(saved))
    result["saved_files"] = files
    result["saved_gb"] = round(sum(os.path.getsize(os.path.join(saved, f)) for f in files) / GB, 3)
    with open(paths(args)["wan_config"], "w", encoding="utf-8") as handle:
        json.dump({"_class_name": "WanTransformer3DModel", **config.to_wan_config()}, handle)
    return result


def _official_tensors(saved: str, drop_block: int | None = None):
    """The saved model's tensors under official names with FSDP wrapper prefixes (read shard by shard)."""
    from safetensors import safe_open

    from univigu_hf.convert import REVERSE_KEY_MAP

    for shard in sorted(f for f in os.listdir(saved) if f.endswith(".safetensors")):
        with safe_open(os.path.join(saved, shard), framework="pt") as handle:
            for key in handle.keys():
                if drop_block is not None and key.startswith(f"blocks.{drop_block}."):
                    continue
                for pattern, template in REVERSE_KEY_MAP:
                    match = re.fullmatch(pattern, key)
                    if match:
                        official = match.expand(template)
                        break
                else:
                    raise ValueError(f"no official name for {key}")
                if official.startswith("blocks."):
                    index, rest = official.split(".", 2)[1:]
                    official = f"blocks.{index}._fsdp_wrapped_module._checkpoint_wrapped_module.{rest}"
                yield "_fsdp_wrapped_module." + official, handle.get_tensor(key)


def _save_official(state_dict: dict, path: str, head_dim: int) -> None:
    import torch

    from univigu_hf.convert import TEXT_ROPE_BUFFER

    state_dict["_fsdp_wrapped_module." + TEXT_ROPE_BUFFER] = 1.0 / (
        10000.0 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    )
    # The official file also holds the optimizer state (AdamW: 2x the fp32 weights); `torch.load(mmap=True)` never
    # reads it, so an empty one stands in (stated in the results).
    torch.save({"model": state_dict, "optimizer": {"state": {}, "param_groups": []}, "step": 10000}, path)


def _head_dim(args) -> int:
    return wan_config("1.3b", args.quick)["attention_head_dim"]


def section_make_checkpoint(args) -> dict:
    target = paths(args)["checkpoint"]
    result = {}
    with Phase(result, "write_official_pth"):
        _save_official(dict(_official_tensors(paths(args)["saved"])), target, _head_dim(args))
    result["checkpoint_gb"] = round(os.path.getsize(target) / GB, 3)
    result["note"] = "bf16 model state dict in the official names with FSDP prefixes; optimizer state left empty"
    return result


def run_cli(command: list[str]) -> dict:
    """Runs a command in a child process: seconds, its own peak RSS (`os.wait4`), return code and its error line."""
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        stdout.seek(0)
        stderr.seek(0)
        out, err = stdout.read(), stderr.read()
    return {
        "seconds": round(seconds, 2),
        "peak_rss_gb": round(usage.ru_maxrss * 1024 / GB, 3),
        "returncode": os.waitstatus_to_exitcode(status),
        "stdout": out.strip()[-400:],
        "error": next((line for line in reversed(err.splitlines()) if ": error:" in line), "")[:700],
    }


def section_convert(args) -> dict:
    p = paths(args)
    shutil.rmtree(p["converted"], ignore_errors=True)
    command = [sys.executable, "-m", "univigu_hf.cli", "convert", "--checkpoint", p["checkpoint"]]
    command += ["--wan-config", p["wan_config"], "--output", p["converted"], "--dtype", "bf16"]
    command += ["--text-vocab-size", str(512 if args.quick else TEXT_VOCAB_SIZE)]
    result = {"command": "univigu convert --checkpoint official.pth --wan-config wan_config.json --dtype bf16"}
    result.update(run_cli(command))
    size = os.path.getsize(p["checkpoint"])
    result["checkpoint_gb"] = round(size / GB, 3)
    result["peak_over_checkpoint"] = round(result["peak_rss_gb"] * GB / size, 3)
    result["goal_peak_over_checkpoint_le_1_5"] = result["peak_over_checkpoint"] <= 1.5
    if result["returncode"] == 0:
        files = sorted(os.listdir(p["converted"]))
        result["output_files"] = files
        result["output_gb"] = round(sum(os.path.getsize(os.path.join(p["converted"], f)) for f in files) / GB, 3)
        result["same_as_saved"] = _same_weights(p["saved"], p["converted"])
    return result


def _same_weights(a: str, b: str) -> bool:
    """Whether two safetensors folders hold bit-identical tensors (read one tensor at a time)."""
    import torch
    from safetensors import safe_open

    def index(folder):
        out = {}
        for shard in sorted(f for f in os.listdir(folder) if f.endswith(".safetensors")):
            with safe_open(os.path.join(folder, shard), framework="pt") as handle:
                out.update(dict.fromkeys(handle.keys(), os.path.join(folder, shard)))
        return out

    left, right = index(a), index(b)
    if set(left) != set(right):
        return False
    for key in left:
        with safe_open(left[key], framework="pt") as x, safe_open(right[key], framework="pt") as y:
            if not torch.equal(x.get_tensor(key), y.get_tensor(key)):
                return False
    return True


def _load(args, **kwargs):
    import torch

    from univigu_hf import UniViGUModel

    return UniViGUModel.from_pretrained(paths(args)["saved"], variant="bf16", dtype=torch.bfloat16, **kwargs).eval()


def section_load(args, **kwargs) -> dict:
    result = {}
    with Phase(result, "from_pretrained"):
        model = _load(args, **kwargs)
    result["dtypes"] = dtype_check(model)
    result["parameters"] = sum(p.numel() for p in model.parameters())
    result["rss_after_gb"] = rss_gb()
    return result


def section_load_device_map(args) -> dict:
    return section_load(args, device_map="cpu")


def section_run(args) -> dict:
    import torch

    result, steps = {}, {}
    with Phase(result, "load"):
        model = _load(args).to(args.device)
    config = model.config
    frames, height, width = (2, 4, 4) if args.quick else SMALL_LATENTS
    latents, prompt, ids, t = _step_inputs(args, config, (frames, height, width))
    negative = torch.zeros_like(prompt)
    caption_tokens = ids.shape[1]
    result["video_tokens"] = frames * (height // 2) * (width // 2)
    result["text_tokens"] = caption_tokens
    result["prompt_tokens"] = PROMPT_TOKENS

    with torch.no_grad():
        with Phase(steps, "text_to_video_cfg_two_forwards"):
            model(video_latents=latents, video_timestep=t, encoder_hidden_states=prompt)
            model(video_latents=latents, video_timestep=t, encoder_hidden_states=negative)
        with Phase(steps, "joint"):
            model(video_latents=latents, text_ids=ids, video_timestep=t, text_timestep=t, encoder_hidden_states=prompt)
        with Phase(steps, "caption_video_cache_off"):
            model(video_latents=latents, text_ids=ids, video_timestep=0, text_timestep=t)
        config.video_attends_text = False  # what makes the cache exact (a config choice of the checkpoint)
        with Phase(steps, "caption_exact_fill_step"):
            out = model(
                video_latents=latents, text_ids=ids, video_timestep=0, text_timestep=t, return_video_context=True
            )
        cache = out.video_context
        with Phase(steps, "caption_exact_cached_step"):
            model(text_ids=ids, text_timestep=t, video_context=cache)
        result["video_cache"] = {
            "exact": cache.exact,
            "nbytes": cache.nbytes,
            "computed_bytes_keys_values": 2 * config.num_layers * result["video_tokens"] * config.hidden_size * 2,
        }
    result["steps"] = steps
    result["seconds_per_step"] = {
        "text_to_video_cfg": steps["text_to_video_cfg_two_forwards"]["seconds"],
        "joint": steps["joint"]["seconds"],
        "caption_video_cache_off": steps["caption_video_cache_off"]["seconds"],
        "caption_video_cache_exact_cached": steps["caption_exact_cached_step"]["seconds"],
        "caption_video_cache_exact_first_step": steps["caption_exact_fill_step"]["seconds"],
    }
    return result


def _step_inputs(args, config, latents_shape):
    """Random bf16 latents and prompt embeddings, caption ids and a timestep, on `--device`."""
    import torch

    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(1, config.in_channels, *latents_shape, generator=generator).bfloat16()
    prompt = torch.randn(1, PROMPT_TOKENS, config.text_dim, generator=generator).bfloat16()
    ids = torch.randint(0, config.text_vocab_size, (1, 16 if args.quick else CAPTION_TOKENS), generator=generator)
    t = torch.tensor([700.0])
    return latents.to(args.device), prompt.to(args.device), ids.to(args.device), t.to(args.device)


class DevicePhase:
    """Times a phase on `--device` (synchronised) and records `torch.cuda.max_memory_allocated` since its start."""

    def __init__(self, into: dict, name: str, device: str):
        self.into, self.name, self.cuda = into, name, str(device).startswith("cuda")

    def __enter__(self):
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.allocated_before = torch.cuda.memory_allocated()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        import torch

        row = {}
        if self.cuda:
            torch.cuda.synchronize()
            row["allocated_before_gb"] = round(self.allocated_before / GB, 3)
            row["peak_allocated_gb"] = round(torch.cuda.max_memory_allocated() / GB, 3)
        row["seconds"] = round(time.perf_counter() - self.start, 3)
        self.into[self.name] = row
        return False


def section_run_480p(args) -> dict:
    """The 1.3B (random bf16 weights, built in memory) at 480x832x81 on `--device`: `--steps` text-to-video steps with
    CFG (two forwards each) and `--steps` captioning steps with the exact video context cache (the first fills it),
    each mode's peak `torch.cuda.max_memory_allocated`; then one text-to-video step with fp8 layerwise casting."""
    import torch

    from univigu_hf import UniViGUModel

    cuda = str(args.device).startswith("cuda")
    result, modes = {"device": args.device, "steps": args.steps}, {}
    if cuda:
        result["gpu"] = torch.cuda.get_device_name()
        result["gpu_memory_gb"] = round(torch.cuda.get_device_properties(0).total_memory / GB, 2)
    with Phase(result, "build_on_cpu"):
        model = UniViGUModel._from_config(univigu_config(args), dtype=torch.bfloat16).eval()
    with DevicePhase(modes, "to_device", args.device):
        model.to(args.device)
    config = model.config
    result["weights_gb"] = round(sum(p.numel() * p.element_size() for p in model.parameters()) / GB, 3)
    shape = (3, 8, 8) if args.quick else LATENTS_480P
    latents, prompt, ids, t = _step_inputs(args, config, shape)
    negative = torch.zeros_like(prompt)
    result["video_tokens"] = shape[0] * (shape[1] // 2) * (shape[2] // 2)
    result["text_tokens"], result["prompt_tokens"] = ids.shape[1], PROMPT_TOKENS
    timesteps = torch.linspace(999.0, 250.0, args.steps).tolist()
    with torch.no_grad():
        step_seconds = []
        with DevicePhase(modes, "text_to_video_cfg", args.device):
            for value in timesteps:
                start = time.perf_counter()
                step_t = torch.tensor([value], device=args.device)
                cond = model(video_latents=latents, video_timestep=step_t, encoder_hidden_states=prompt)
                uncond = model(video_latents=latents, video_timestep=step_t, encoder_hidden_states=negative)
                latents = latents - 0.01 * (
                    uncond.video_velocity + 5.0 * (cond.video_velocity - uncond.video_velocity)
                )
                if cuda:
                    torch.cuda.synchronize()
                step_seconds.append(round(time.perf_counter() - start, 3))
        modes["text_to_video_cfg"]["step_seconds"] = step_seconds
        modes["text_to_video_cfg"]["finite"] = bool(torch.isfinite(latents).all())
        config.video_attends_text = False  # what makes the cache exact (a config choice of the checkpoint)
        step_seconds, cache = [], None
        with DevicePhase(modes, "caption_video_cache_exact", args.device):
            for value in timesteps:
                start = time.perf_counter()
                step_t = torch.tensor([value], device=args.device)
                if cache is None:  # the first step runs the video once and fills the cache
                    out = model(
                        video_latents=latents,
                        text_ids=ids,
                        video_timestep=0,
                        text_timestep=step_t,
                        return_video_context=True,
                    )
                    cache = out.video_context
                else:
                    out = model(text_ids=ids, text_timestep=step_t, video_context=cache)
                ids = out.text_logits.argmax(-1)
                if cuda:
                    torch.cuda.synchronize()
                step_seconds.append(round(time.perf_counter() - start, 3))
        modes["caption_video_cache_exact"]["step_seconds"] = step_seconds
        modes["caption_video_cache_exact"]["cache"] = {
            "exact": cache.exact,
            "nbytes_gb": round(cache.nbytes / GB, 3),
            "computed_keys_values_gb": round(
                2 * config.num_layers * result["video_tokens"] * config.hidden_size * 2 / GB, 3
            ),
        }
        del cache, out
        config.video_attends_text = True
        if cuda:
            torch.cuda.empty_cache()
        try:
            model.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.bfloat16)
            with DevicePhase(modes, "text_to_video_cfg_fp8_layerwise_one_step", args.device):
                step_t = torch.tensor([timesteps[0]], device=args.device)
                model(video_latents=latents, video_timestep=step_t, encoder_hidden_states=prompt)
                model(video_latents=latents, video_timestep=step_t, encoder_hidden_states=negative)
            modes["text_to_video_cfg_fp8_layerwise_one_step"]["weights_gb"] = round(
                sum(p.numel() * p.element_size() for p in model.parameters()) / GB, 3
            )
        except Exception as error:  # noqa: BLE001 - a failure here is a result, not a reason to lose the others
            modes["text_to_video_cfg_fp8_layerwise_one_step"] = {"error": f"{type(error).__name__}: {error}"[:600]}
    result["modes"] = modes
    result["computed_in_docs_scaling_md_gb"] = {
        "weights_bf16": 6.10,
        "text_to_video": "6.1 (transformer alone, model CPU offload column) + largest activation 0.59",
        "caption_exact_480p": "12.1 (transformer + 6.04 cache, model CPU offload column; 12.7 with the VAE)",
    }
    return result


def _block_forward(args, width_heads: int, ffn_dim: int, latents_shape, text_tokens: int) -> dict:
    """One `UniViGUTransformerBlock` forward in bf16 (random weights) at `latents_shape`."""
    import torch
    from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

    from univigu_hf.models.attention_processor import JointAttentionInputs, text_rotary_embedding
    from univigu_hf.models.transformer_block import UniViGUTransformerBlock

    result = {}
    head_dim = _head_dim(args)
    dim = width_heads * head_dim
    with Phase(result, "build_block"):
        torch.set_default_dtype(torch.bfloat16)
        block = UniViGUTransformerBlock(dim, ffn_dim, width_heads, "rms_norm_across_heads", True, 1e-6).eval()
        torch.set_default_dtype(torch.float32)
        block.norm2.float()
        block.scale_shift_table.data = block.scale_shift_table.data.float()
    rope = WanRotaryPosEmbed(head_dim, (1, 2, 2), 1024)
    frames, height, width = latents_shape
    video_tokens = frames * (height // 2) * (width // 2)
    generator = torch.Generator().manual_seed(0)
    with Phase(result, "rotary_tables"):
        rotary = rope(torch.empty(1, 16, frames, height, width, dtype=torch.bfloat16))
    result["rotary_tables_gb"] = round(sum(r.numel() * r.element_size() for r in rotary) / GB, 4)
    result["rotary_dtype"] = str(rotary[0].dtype)
    video = torch.randn(1, video_tokens, dim, generator=generator).bfloat16()
    text = torch.randn(1, text_tokens, dim, generator=generator).bfloat16()
    temb = (torch.randn(1, 6, dim, generator=generator) * 0.1).bfloat16()
    prompt = torch.randn(1, PROMPT_TOKENS, dim, generator=generator).bfloat16()
    inputs = JointAttentionInputs(
        rotary, text_rotary_embedding(text_tokens, head_dim, 10000.0, "cpu"), None, True, None
    )
    with torch.no_grad(), Phase(result, "forward"):
        out_video, out_text = block(video, text, temb, temb, prompt, inputs)
    result["finite"] = bool(torch.isfinite(out_video).all() and torch.isfinite(out_text).all())
    result["video_tokens"], result["text_tokens"], result["width"] = video_tokens, text_tokens, dim
    return result


def section_block_480p(args) -> dict:
    config = wan_config("1.3b", args.quick)
    shape = (3, 8, 8) if args.quick else LATENTS_480P
    return _block_forward(args, config["num_attention_heads"], config["ffn_dim"], shape, CAPTION_TOKENS)


def section_size_14b(args) -> dict:
    import torch

    from univigu_hf import UniViGUModel

    result = {}
    with torch.device("meta"):
        result["parameters_full_text_ffn"] = count_by_module(UniViGUModel(univigu_config(args, "14b")))
        result["parameters_text_ffn_1536"] = sum(
            p.numel() for p in UniViGUModel(univigu_config(args, "14b", text_ffn_dim=1536)).parameters()
        )
    config = wan_config("14b", args.quick)
    shape = (2, 4, 4) if args.quick else SMALL_LATENTS
    result["block_forward_small_video"] = _block_forward(
        args, config["num_attention_heads"], config["ffn_dim"], shape, CAPTION_TOKENS
    )
    return result


def _error_result(function) -> dict:
    start = time.perf_counter()
    try:
        function()
    except Exception as error:  # noqa: BLE001 - the error is what is measured
        return {
            "raised": type(error).__name__,
            "message": " ".join(str(error).split())[:600],
            "seconds": round(time.perf_counter() - start, 2),
            "peak_rss_gb": peak_gb(),
        }
    return {"raised": None, "seconds": round(time.perf_counter() - start, 2), "peak_rss_gb": peak_gb()}


def section_bad_truncated_shard(args) -> dict:
    import torch

    from univigu_hf import UniViGUModel

    saved, folder = paths(args)["saved"], os.path.join(paths(args)["bad"], "truncated")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    shards = sorted(f for f in os.listdir(saved) if f.endswith(".safetensors"))
    for name in os.listdir(saved):
        if name != shards[-1]:
            os.link(os.path.join(saved, name), os.path.join(folder, name))
    size = os.path.getsize(os.path.join(saved, shards[-1]))
    with open(os.path.join(saved, shards[-1]), "rb") as source, open(os.path.join(folder, shards[-1]), "wb") as out:
        out.write(source.read(size // 2))  # a download cut half way through the last shard
    result = {"truncated": shards[-1]}
    reset_peak()
    result.update(_error_result(lambda: UniViGUModel.from_pretrained(folder, variant="bf16", dtype=torch.bfloat16)))
    return result


def section_bad_missing_block(args) -> dict:
    p = paths(args)
    layers = wan_config("1.3b", args.quick)["num_layers"]
    target = os.path.join(p["bad"], "missing_block.pth")
    os.makedirs(p["bad"], exist_ok=True)
    result = {"dropped": f"blocks.{layers - 1}.*"}
    # Written by another process: a child forked from a process that held the tensors would inherit its peak RSS.
    result["write_pth"] = run_section(args, "write_missing_block")
    command = [sys.executable, "-m", "univigu_hf.cli", "convert", "--checkpoint", target]
    command += ["--wan-config", p["wan_config"], "--output", os.path.join(p["bad"], "out_missing"), "--dtype", "bf16"]
    result["convert"] = run_cli(command)
    result["checkpoint_gb"] = round(os.path.getsize(target) / GB, 3)
    os.remove(target)
    return result


def section_write_missing_block(args) -> dict:
    p = paths(args)
    layers = wan_config("1.3b", args.quick)["num_layers"]
    target = os.path.join(p["bad"], "missing_block.pth")
    _save_official(dict(_official_tensors(p["saved"], drop_block=layers - 1)), target, _head_dim(args))
    return {}


def section_write_partial_14b(args) -> dict:
    """A few real-shaped 14B tensors in the official layout (the embedding and head alone are 2.6 GB each)."""
    import torch

    config = univigu_config(args, "14b")
    dim, vocab = config.hidden_size, config.text_vocab_size
    state = {
        "vocab_embed.weight": torch.zeros(vocab, dim, dtype=torch.bfloat16),
        "text_head.linear.weight": torch.zeros(vocab, dim, dtype=torch.bfloat16),
        "text_head.linear.bias": torch.zeros(vocab, dtype=torch.bfloat16),
        "patch_embedding.weight": torch.zeros(dim, 16, 1, 2, 2, dtype=torch.bfloat16),
        "blocks.0.ffn_t.net.0.proj.weight": torch.zeros(config.ffn_dim, dim, dtype=torch.bfloat16),
        "blocks.0.attn1.to_q.weight": torch.zeros(dim, dim, dtype=torch.bfloat16),
    }
    torch.save({"model": state, "optimizer": {}, "step": 1}, os.path.join(paths(args)["bad"], "partial_14b.pth"))
    return {"tensors": sorted(state)}


def section_bad_14b_as_1_3b(args) -> dict:
    """A few real-shaped 14B tensors (official names) converted with the 1.3B config."""
    p = paths(args)
    target = os.path.join(p["bad"], "partial_14b.pth")
    os.makedirs(p["bad"], exist_ok=True)
    result = {"write_pth": run_section(args, "write_partial_14b")}
    result["checkpoint_gb"] = round(os.path.getsize(target) / GB, 3)
    command = [sys.executable, "-m", "univigu_hf.cli", "convert", "--checkpoint", target]
    command += ["--wan-config", p["wan_config"], "--output", os.path.join(p["bad"], "out_14b"), "--dtype", "bf16"]
    result["convert"] = run_cli(command)
    os.remove(target)
    return result


# ---------------------------------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------------------------------
def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    result = globals()[f"section_{args.child}"](args)
    result["process_peak_rss_gb"] = round(_status_kb("VmHWM") * 1024 / GB, 3)
    with open(args.child_output, "w", encoding="utf-8") as handle:
        json.dump(result, handle)


def run_section(args, name: str) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = handle.name
    command = [sys.executable, os.path.abspath(__file__), "--child", name, "--child-output", out]
    command += ["--workdir", args.workdir, "--threads", str(args.threads)] + (["--quick"] if args.quick else [])
    command += ["--device", args.device, "--steps", str(args.steps)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    row = {"wall_seconds": round(seconds, 2), "peak_rss_gb": round(usage.ru_maxrss * 1024 / GB, 3)}
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        with open(out, encoding="utf-8") as handle:
            row.update(json.load(handle))
    else:
        row["failed"] = f"exit status {status}"
    os.remove(out)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=None, help="JSON file to write; sections already there are kept")
    parser.add_argument("--quick", action="store_true", help="the same code on a tiny model (seconds)")
    parser.add_argument("--sections", default=",".join(DEFAULT_SECTIONS), help=f"comma-separated: {SECTIONS}")
    parser.add_argument("--skip", default="", help="comma-separated sections to leave out")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "univigu_real_size"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="where `run` and `run_480p` run (cpu, cuda); the rest is CPU")
    parser.add_argument("--steps", type=int, default=4, help="steps per task of `run_480p`")
    parser.add_argument("--clean", action="store_true", help="remove --workdir (~20 GB of files) at the end")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-output", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    sys.path.insert(0, HERE)
    import torch
    from _report import emit

    os.makedirs(args.workdir, exist_ok=True)
    chosen = [s for s in args.sections.split(",") if s and s not in args.skip.split(",")]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; known: {SECTIONS}")
    results = {}
    if args.output and os.path.isfile(args.output):
        with open(args.output, encoding="utf-8") as handle:
            results = json.load(handle)
    results.update(
        benchmark="real_size",
        quick=args.quick,
        environment={
            "device": args.device,
            "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
            "torch": torch.__version__,
            "threads": args.threads,
            "cpu": _cpu_name(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB, 1),
        },
        measuring="each section in a fresh process; peak_rss_gb = os.wait4 ru_maxrss of that process; phases inside a "
        "section reset the peak (/proc/self/clear_refs) and read VmHWM",
    )
    sections = results.setdefault("sections", {})
    for name in chosen:
        print(f"[real_size] {name} ...", file=sys.stderr, flush=True)
        # The measuring machine's folder does not go into the results (messages name files under it).
        sections[name] = json.loads(json.dumps(run_section(args, name)).replace(args.workdir, "<workdir>"))
        print(f"[real_size] {name}: {json.dumps(sections[name])[:300]}", file=sys.stderr, flush=True)
        if args.output:  # after every section, so a later failure keeps what ran
            with open(args.output, "w", encoding="utf-8") as handle:
                json.dump(results, handle, indent=2)
    results["skipped"] = sorted(set(SECTIONS) - set(sections))
    results["notes"] = NOTES
    results["total_wall_seconds"] = round(sum(row["wall_seconds"] for row in sections.values()), 1)
    results["checks"] = checks(sections)
    if args.clean:
        shutil.rmtree(args.workdir, ignore_errors=True)
    emit(results, args.output)
    failed = [name for name, ok in results["checks"].items() if not ok]
    if failed:
        print(f"[real_size] FAILED: {failed}", file=sys.stderr)
        sys.exit(1)


def checks(sections: dict) -> dict:
    """What "passes" means: every section ran, conversion within 1.5x the checkpoint, dtypes as intended, and every
    bad input raised a clear error before the model was allocated (its process stayed under 1/4 of the weights)."""
    result = {f"{name} ran": "failed" not in row for name, row in sections.items()}
    if "convert" in sections:
        result["convert peak <= 1.5x checkpoint"] = bool(sections["convert"].get("goal_peak_over_checkpoint_le_1_5"))
    for name in ("build_save", "load", "load_device_map"):
        if name in sections:
            result[f"{name} dtypes"] = bool(sections[name].get("dtypes", {}).get("ok"))
    weights_gb = sections.get("build_save", {}).get("bf16_weights_gb")
    for name, row in sections.items():
        if not name.startswith("bad_"):
            continue
        error = row.get("convert", row)
        raised = bool(error.get("raised") or error.get("returncode"))
        early = weights_gb is None or error.get("peak_rss_gb", 0) < max(weights_gb / 4, 0.6)
        result[f"{name} fails early"] = raised and early
    return result


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
