"""Shared output of the benchmark scripts: JSON on stdout and in a file, and the summary table of `run_all.py`."""

import json
import os


REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def repository_path(path: str) -> str:
    """`path` as the results record it: relative to the repository when it lies inside (committed results must not
    carry the measuring machine's folders), otherwise as given."""
    absolute = os.path.abspath(path)
    if os.path.commonpath([absolute, REPOSITORY]) != REPOSITORY:
        return path
    return os.path.relpath(absolute, REPOSITORY).replace(os.sep, "/")


def emit(results: dict, output: str | None) -> None:
    """Prints `results` as JSON and writes them to `output` (folders created) when given."""
    text = json.dumps(results, indent=2)
    print(text)
    if output:
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")


def _x(value) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _goal(met) -> str:
    return {True: "met", False: "NOT met", None: "-"}[met]


def _generation(r: dict) -> list[tuple]:
    rows = []
    for step in r["denoising_step"]:
        tokens = f"{step['video_tokens']} video tokens"
        rows.append(("generation", f"denoising step / Wan, stream off, {tokens}", _x(step["stream_off_over_wan"]), ""))
        rows.append(
            (
                "generation",
                f"denoising step / Wan, {step['text_tokens']}-token stream, {tokens}",
                _x(step["stream_on_over_wan"]),
                "",
            )
        )
    pipe = r["generate_video_vs_WanPipeline"]
    what = f"generate_video / WanPipeline, {pipe['video_tokens']} tokens, {pipe['steps']} steps"
    rows.append(("generation", f"{what}, stream off", _x(pipe["stream_off_over_wan"]), ""))
    rows.append(("generation", f"{what}, stream on", _x(pipe["stream_on_over_wan"]), ""))
    rows.append(("generation", "stream off <= 1.03x", "", _goal(r.get("goal_met"))))
    return rows


def _captioning(r: dict) -> list[tuple]:
    rows = []
    for row in r["by_video_tokens"]:
        what = f"cache speed-up, {row['video_tokens']} video + {row['text_tokens']} text tokens, {r['steps']} steps"
        value = f"{_x(row['speedup'])} (bound {_x(row['speedup_bound'])}; same captions: {row['same_captions']})"
        rows.append(("captioning", what, value, ""))
    versus = r["caption_vs_generation"]
    what = f"caption / generate_video (CFG), {versus['video_tokens']} tokens, {versus['steps']} steps"
    value = f"off {_x(versus['caption_off_over_generation'])}, exact {_x(versus['caption_exact_over_generation'])}"
    rows.append(("captioning", what, value, ""))
    rows.append(("captioning", r["goal"], "", _goal(r.get("goal_met"))))
    return rows


def _accuracy(r: dict) -> list[tuple]:
    rows = []
    for name, mode in r["modes"].items():
        what = f"{name} ({mode['full_steps']}/{r['steps']} full steps), {r['num_clips']} held-out clips"
        value = (
            f"accuracy {mode['mean_accuracy']:.3f}, same as off {mode['same_caption_as_off']:.0%}, "
            f"{_x(mode['speedup_vs_off'])}"
        )
        rows.append(("caption cache accuracy", what, value, ""))
    return rows


def _decoding(r: dict) -> list[tuple]:
    rows = []
    for name, mode in r["modes"].items():
        what = f"{name}, {r['num_clips']} held-out clips, batches of {r['batch_size']}, {r['steps']} steps"
        value = (
            f"accuracy {mode['mean_accuracy']:.3f}, {mode['mean_calls']} calls per batch, same as euler "
            f"{mode['same_caption_as_euler']:.0%}, {_x(mode['speedup_vs_euler'])}"
        )
        rows.append(("caption decoding", what, value, ""))
    return rows


def _training(r: dict) -> list[tuple]:
    value = (
        f"{r['trainer_samples_per_second']} vs {r['bare_loop_samples_per_second']} samples/s "
        f"({_x(r['trainer_over_bare_time_ratio'])}); peak {r['trainer_peak_memory_mb']} vs "
        f"{r['bare_loop_peak_memory_mb']} MB"
    )
    return [("training", "Trainer vs bare loop (<= 1.10x)", value, _goal(r.get("goal_met")))]


def _data_preparation(r: dict) -> list[tuple]:
    ms = r["ms_per_clip"]
    value = ", ".join(f"{name} {value} ms" for name, value in ms.items())
    value += f" ({_x(r['speedup'])}; same latents: {r['same_latents']})"
    return [("data preparation", f"prepare_dataset per clip, {r['num_clips']} mp4 clips", value, "")]


def _efficiency(r: dict) -> list[tuple]:
    rows = []
    for name, row in r["forward"].items():
        what = f"{name} forward, {r['video_tokens']} video tokens, {r['dtype']}"
        value = (
            f"{row['achieved_gflops_per_s']} GFLOP/s = {row['fraction_of_matmul_peak']:.0%} of the "
            f"{r['matmul_peak_gflops_per_s']} GFLOP/s matmul peak"
        )
        rows.append(("efficiency", what, value, ""))
    return rows


def _pipeline_modes(r: dict) -> list[tuple]:
    seconds = ", ".join(f"{name} {value}s" for name, value in r["seconds_median"].items())
    return [
        ("pipeline modes", "use_text_stream=False vs WanPipeline, max abs diff", str(r["parity_max_abs_diff_vs_WanPipeline"]), ""),
        ("pipeline modes", f"tiny pipeline, {r['steps']} steps", seconds, ""),
    ]  # fmt: skip


def _param_counts(r: dict) -> list[tuple]:
    rows = []
    for name in ("wan2.1_t2v_1.3b", "univigu_1.3b_full_text_ffn", "wan2.1_t2v_14b", "univigu_14b_full_text_ffn"):
        if name in r:
            rows.append(("parameters", name, f"{r[name]['total'] / 1e9:.3f}B ({r[name]['bf16_gb']} GB bf16)", ""))
    return rows


def _real_videos(r: dict) -> list[tuple]:
    rows = []
    for name, row in r["clips"].items():
        value = (
            f"{row['peak_rss_mb']} MB ({row['rss_over_sample']}x the sample)" if "peak_rss_mb" in row else row["error"]
        )
        rows.append(("real videos", f"caption peak RSS, {name}", value, ""))
    rows.append(("real videos", r["goal_rss"], "", _goal(r.get("goal_rss_met"))))
    for name, seconds in r["startup_seconds"].items():
        if isinstance(seconds, float):
            rows.append(("real videos", name, f"{seconds} s", ""))
    rows.append(("real videos", f"command start-up {r['goal_startup']}", "", _goal(r.get("goal_startup_met"))))
    return rows


def _cache_hooks(r: dict) -> list[tuple]:
    rows = []
    for name, row in r["configs"].items():
        if name == "no cache":
            continue
        value = (
            f"transformer {_x(row['transformer_speedup'])}, call {_x(row['call_speedup'])}, "
            f"{row['accuracy_points_lost']} points lost"
        )
        rows.append(("cache hooks", f"{name}, {r['steps']} steps, {r['videos_per_config']} videos", value, ""))
    rows.append(("cache hooks", r["goal"], r.get("best") or "", _goal(r.get("goal_met"))))
    return rows


def _toolbox(r: dict) -> list[tuple]:
    compiled = r["regional_compile"]
    tokens = f"{r['video_tokens']} video + {r['text_tokens']} text tokens"
    rows = [
        (
            "toolbox",
            f"regional inductor compile / eager, one step, {tokens}",
            f"{_x(compiled['speedup_over_eager'])} (graphs {compiled['graphs_after_first_call']} -> "
            f"{compiled['graphs_after_all_calls']})",
            "",
        )
    ]
    int8 = r.get("int8_weight_only", {})
    if "weight_ratio" in int8:
        value = f"weights {int8['weight_ratio']}x, step {_x(int8['speed_over_eager_fp32'])}, diff {int8['mean_relative_diff_video']}"
        rows.append(("toolbox", "int8 weight-only / fp32", value, ""))
    return rows


def _group_offload(r: dict) -> list[tuple]:
    rows = []
    for mode, run in r["modes"].items():
        if mode == "none":
            continue
        value = f"peak {run['peak_over_no_offload']}x, time {_x(run['time_over_no_offload'])}"
        value += "" if run["same_output"] else ", outputs DIFFER"
        rows.append(
            ("group offload", f"{mode} / none, {r['weights_mb']} MB of weights ({r['peak_measure']})", value, "")
        )
    return rows


def _lora(r: dict) -> list[tuple]:
    step = r["mid_size_step"]
    what = f"rank-{step['rank']} LoRA step / no LoRA, {step['video_tokens']} video tokens, 1 thread"
    value = (
        f"unfused {_x(step['unfused_over_no_lora'])}, fused {_x(step['fused_over_no_lora'])}, fused+unloaded "
        f"{_x(step['fused_unloaded_over_no_lora'])}; load {step['load_lora_weights_s']} s"
    )
    few = r["default_model_few_step"]
    calls = few["transformer_calls_per_call"]
    few_value = (
        f"time {_x(few['few_step_over_default_time'])}, transformer calls {calls['few_step']} vs {calls['default']}"
    )
    return [
        ("lora", what, value, _goal(r.get("goal_met"))),
        ("lora", "default model: 4 steps, guidance 1.0 / 20 steps, guidance 3.0", few_value, ""),
    ]


SUMMARIES = {
    "param_counts": _param_counts,
    "pipeline_modes": _pipeline_modes,
    "generation_overhead": _generation,
    "captioning": _captioning,
    "caption_cache_accuracy": _accuracy,
    "caption_decoding": _decoding,
    "training_overhead": _training,
    "data_preparation": _data_preparation,
    "efficiency": _efficiency,
    "real_videos": _real_videos,
    "cache_hooks": _cache_hooks,
    "toolbox": _toolbox,
    "group_offload": _group_offload,
    "lora": _lora,
}


def summary_table(results_dir: str, names: list[str] | None = None) -> str:
    """
    One table of the headline numbers of every result file in `results_dir` (files that are missing or from an
    older version of a script are listed as such).

    Returns:
        `str`: the table, in Markdown.
    """
    lines = ["| benchmark | measurement | result | goal |", "|---|---|---|---|"]
    for name in names or list(SUMMARIES):
        path = os.path.join(results_dir, f"{name}.json")
        if not os.path.isfile(path):
            lines.append(f"| {name} | (no result: run the benchmark) | | |")
            continue
        with open(path, encoding="utf-8") as handle:
            results = json.load(handle)
        try:
            rows = SUMMARIES[name](results)
        except (KeyError, TypeError):
            lines.append(f"| {name} | (result from an older version of the script: rerun it) | | |")
            continue
        quick = " (--quick)" if results.get("quick") else ""
        lines += [f"| {group}{quick} | {what} | {value} | {goal} |" for group, what, value, goal in rows]
    return "\n".join(lines)
