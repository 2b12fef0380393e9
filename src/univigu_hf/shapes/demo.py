"""`univigu demo`: the embedded shapes-world model in all three tasks, read back by the detectors, with a report.

See docs/demo.md. The command (`univigu_hf.cli`) parses the arguments, loads the pipeline and calls [`run_demo`].
"""

import json
import os
import re
import time
from typing import Any

import numpy as np
import torch
from diffusers.utils import logging
from PIL import Image

from .. import __version__
from ..pipelines.video_io import load_video_file, write_video
from ..utils.saving import atomic_file, write_text_atomic
from .detection import ATTRIBUTES, UNKNOWN, detect_attributes
from .scoring import PROMPT_ATTRIBUTES, parse_caption
from .world import HELD_OUT_PROMPTS, TRAIN_PROMPTS, ShapeAttributes


logger = logging.get_logger(__name__)


DEMO_PROMPTS = (
    "a large blue circle moving down",
    "a small yellow triangle moving right",
    "a large red square moving right",  # held out; the combination of the shipped SAMPLE_VIDEO
    "a large green triangle moving left",  # held out
)
"""Text -> video prompts of `univigu demo` (two seen in training, two of `shapes.HELD_OUT_PROMPTS`)."""
DEMO_JOINT_PROMPTS = ("a small green square moving up", "a small blue triangle moving up")
"""Joint generation prompts of `univigu demo` (one seen in training, one held out)."""
STRIP_SCALE = 4  # frame strips: nearest-neighbour upscaling factor
STRIP_GAP = 1  # white pixels between frames (before upscaling)


def prompt_split(prompt: str) -> str:

    if prompt in HELD_OUT_PROMPTS:
        return "held-out"
    return "train" if prompt in TRAIN_PROMPTS else "other"


def _slug(text: str) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", text.lower()))[:60]


def describe_detected(detected: dict[str, str]) -> str:
    """The detectors' reading as a sentence (the world's first caption template)."""

    if detected["shape"] == UNKNOWN:
        return f"no shape found (on a {detected['background']} background)"
    if detected["direction"] == UNKNOWN:
        return (
            f"a {detected['size']} {detected['color']} {detected['shape']} not moving on a {detected['background']} "
            f"background, starting from the {detected['start']}"
        )
    return ShapeAttributes(**detected).caption(0)


def compare_attributes(
    stated: dict[str, str | None], detected: dict[str, str], names: tuple[str, ...]
) -> dict[str, Any]:
    """Which attributes a prompt or caption (`stated`, from `parse_caption`) gets right about a video (`detected`)."""
    matched = [name for name in names if stated.get(name) == detected[name]]
    return {
        "matched": matched,
        "differing": {
            name: {"stated": stated.get(name), "detected": detected[name]} for name in names if name not in matched
        },
        "score": f"{len(matched)}/{len(names)}",
        "all_match": len(matched) == len(names),
    }


def describe_comparison(comparison: dict[str, Any], detailed: bool = False) -> str:
    """`"2/7: shape, color"` (the attributes that match), or with `detailed` the differing ones with both values."""
    if not detailed:
        return comparison["score"] + (": " + ", ".join(comparison["matched"]) if comparison["matched"] else "")
    differing = ", ".join(
        f"{name} ({values['stated'] or 'not stated'} vs {values['detected']})"
        for name, values in comparison["differing"].items()
    )
    return comparison["score"] + (f"; differs on {differing}" if differing else "")


def write_frame_strip(frames, path: str) -> None:
    """Writes `(frames, height, width, 3)` floats in [0, 1] as one PNG: frames left to right, upscaled (nearest)."""
    uint8 = (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)
    num_frames, height, width, _ = uint8.shape
    strip = np.full((height, num_frames * (width + STRIP_GAP) - STRIP_GAP, 3), 255, dtype=np.uint8)
    for i, frame in enumerate(uint8):
        strip[:, i * (width + STRIP_GAP) : i * (width + STRIP_GAP) + width] = frame
    image = Image.fromarray(strip)
    with atomic_file(path) as temporary:
        image.resize((image.width * STRIP_SCALE, image.height * STRIP_SCALE), Image.Resampling.NEAREST).save(
            temporary, format="PNG"
        )


def _save_clip(frames, output_dir: str, name: str, fps: float) -> dict[str, str]:
    """Writes a generated clip as `name`.mp4, .gif and .png (frame strip); returns the file names (relative)."""
    files = {"mp4": f"{name}.mp4", "gif": f"{name}.gif", "png": f"{name}.png"}
    write_video(frames, os.path.join(output_dir, files["mp4"]), fps)
    write_video(frames, os.path.join(output_dir, files["gif"]), fps)
    write_frame_strip(frames, os.path.join(output_dir, files["png"]))
    return files


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def demo_markdown(report: dict[str, Any]) -> str:
    """`report.md`: the demo's results with the frame strips."""
    settings, seconds = report["settings"], report["seconds"]
    lines = [
        "# Uni-ViGU demo",
        "",
        f"Model: `{report['model']}` (univigu_hf {report['univigu_hf']}). {settings['num_inference_steps']} steps, "
        f"guidance scale {settings['guidance_scale']}, seed {settings['seed']} (sample *i* of each task uses seed + "
        f"*i*), {settings['width']}x{settings['height']}, {settings['num_frames']} frames at {settings['fps']} fps, "
        f"{settings['device']}; {seconds['total']} s in all.",
        "",
        "Frame strips show the frames left to right, upscaled "
        f"{STRIP_SCALE}x. *Detectors* are `univigu_hf.shapes.scoring.detect_attributes`: they read a clip's "
        "attributes back from its pixels; *held-out* prompts (`shapes.HELD_OUT_PROMPTS`) were never seen in "
        "training.",
        "",
        f"## Text -> video ({seconds['generate']} s for {len(report['generate'])} prompts in one batch)",
        "",
    ]
    for i, item in enumerate(report["generate"], 1):
        files = item["files"]
        lines += [
            f"### {i}. `{item['prompt']}` ({item['split']} prompt, seed {item['seed']})",
            "",
            f"![{item['prompt']}]({files['png']})",
            "",
            f"- detectors: {describe_detected(item['detected'])}",
            f"- prompt attributes found in the video: {describe_comparison(item['prompt_vs_video'], True)}",
            f"- files: [{files['mp4']}]({files['mp4']}), [{files['gif']}]({files['gif']})",
            "",
        ]
    lines += [
        f"## Video -> text ({seconds['caption']} s for {len(report['caption'])} videos in one batch)",
        "",
    ]
    sample = next((item for item in report["caption"] if item["source"] == "sample"), None)
    if sample is not None:
        lines += [
            f"The shipped sample clip `{os.path.basename(sample['video'])}` (`univigu_hf.SAMPLE_VIDEO`, a held-out "
            f"combination); detectors: {describe_detected(sample['detected'])}.",
            "",
            f"![sample video]({sample['png']})",
            "",
        ]
    lines += ["| video | caption | caption attributes the detectors confirm |", "|---|---|---|"]
    for item in report["caption"]:
        video = os.path.basename(item["video"])
        lines.append(
            f"| {_markdown_cell(video)} | {_markdown_cell(item['caption']) or '(empty)'} | "
            f"{_markdown_cell(describe_comparison(item['caption_vs_video']))} |"
        )
    lines += [
        "",
        f"## Joint text + video ({seconds['joint']} s for {len(report['joint'])} prompts in one batch)",
        "",
    ]
    for i, item in enumerate(report["joint"], 1):
        files = item["files"]
        verdict = "yes" if item["caption_vs_video"]["all_match"] else "no"
        lines += [
            f"### {i}. `{item['prompt']}` ({item['split']} prompt, seed {item['seed']})",
            "",
            f"![{item['prompt']}]({files['png']})",
            "",
            f"- caption: {item['caption'] or '(empty)'}",
            f"- detectors: {describe_detected(item['detected'])}",
            f"- caption matches its video: {verdict} ({describe_comparison(item['caption_vs_video'], True)})",
            f"- prompt attributes found in the video: {describe_comparison(item['prompt_vs_video'], True)}",
            f"- files: [{files['mp4']}]({files['mp4']}), [{files['gif']}]({files['gif']})",
            "",
        ]
    lines += ["## Timings (seconds)", "", "| " + " | ".join(seconds) + " |", "|---" * len(seconds) + "|"]
    lines += ["| " + " | ".join(str(value) for value in seconds.values()) + " |", ""]
    return "\n".join(lines)


def demo_summary(report: dict[str, Any]) -> list[str]:
    """The lines `univigu demo` prints."""
    settings, seconds = report["settings"], report["seconds"]
    width = max(len(item["prompt"]) for item in [*report["generate"], *report["joint"]])
    lines = [
        f"Uni-ViGU demo: {report['model']}",
        f"({settings['num_inference_steps']} steps, guidance {settings['guidance_scale']}, seed {settings['seed']}, "
        f"{settings['device']})",
        "",
        f"Text -> video ({seconds['generate']} s), what the detectors read in each video [prompt attributes found]:",
    ]
    for item in report["generate"]:
        lines.append(
            f"  {item['split']:>8}  {item['prompt']:<{width}} -> {describe_detected(item['detected'])} "
            f"[{item['prompt_vs_video']['score']}]"
        )
    lines += ["", f"Video -> text ({seconds['caption']} s) [caption attributes the detectors confirm]:"]
    for item in report["caption"]:
        lines.append(f"  {item['label']} -> {item['caption']!r} [{item['caption_vs_video']['score']}]")
    lines += ["", f"Joint text + video ({seconds['joint']} s):"]
    for item in report["joint"]:
        verdict = "yes" if item["caption_vs_video"]["all_match"] else "no"
        lines += [
            f"  {item['split']:>8}  {item['prompt']:<{width}} -> {item['caption']!r}",
            f"  {'':>8}  {'':<{width}}    detectors: {describe_detected(item['detected'])}",
            f"  {'':>8}  {'':<{width}}    caption matches its video: {verdict} "
            f"(agrees on {describe_comparison(item['caption_vs_video'])})",
        ]
    counts = report["files_written"]
    lines += [
        "",
        f"Wrote {counts['mp4']} mp4, {counts['gif']} gif, {counts['png']} png frame strips, report.md and "
        f"report.json to {report['output_dir']} ({seconds['total']} s in all)",
    ]
    return lines


def write_report(report: dict[str, Any], output_dir: str) -> None:
    """Writes `report.json` and `report.md` (with the frame strips) into `output_dir`."""
    write_text_atomic(os.path.join(output_dir, "report.json"), json.dumps(report, indent=2) + "\n")
    write_text_atomic(os.path.join(output_dir, "report.md"), demo_markdown(report))


def _cpu_generator(seed: int) -> torch.Generator:
    # A CPU generator: the same seed gives the same noise on every device.
    return torch.Generator("cpu").manual_seed(seed)


def run_demo(
    pipe,
    output_dir: str,
    *,
    num_inference_steps: int | None = None,
    seed: int = 0,
    sample_path: str | None = None,
    model_name: str = "",
    device: str = "cpu",
    dtype: str = "float32",
    load_seconds: float = 0.0,
) -> dict[str, Any]:
    """
    Runs `pipe` (a shapes-world pipeline) in all three tasks, each prompt list batched in one call: text -> video for
    `DEMO_PROMPTS`, video -> text for those videos and `sample_path`, joint generation for `DEMO_JOINT_PROMPTS`. Reads
    every generated video back with the detectors and writes the videos (mp4 + gif), PNG frame strips,
    `report.md` and `report.json` into the existing folder `output_dir`.

    Args:
        pipe ([`UniViGUPipeline`]): the pipeline (e.g. `univigu_hf.DEFAULT_MODEL`).
        output_dir (`str`): an existing folder.
        num_inference_steps (`int`, *optional*): steps per task (the pipeline's default).
        seed (`int`): sample *i* of each task uses `seed + i` (CPU generators).
        sample_path (`str`, *optional*): a clip to caption too (`univigu_hf.SAMPLE_VIDEO`).
        model_name, device, dtype (`str`), load_seconds (`float`): recorded in the report.

    Returns:
        `dict`: the report (also written as `report.json`).

    Raises:
        `ValueError`/`TypeError` from the pipeline's argument checks, `OSError` when a file cannot be written.
    """
    start_all = time.perf_counter()
    seconds: dict[str, float] = {"load": round(load_seconds, 3)}
    steps = num_inference_steps if num_inference_steps is not None else pipe.config.default_num_inference_steps
    fps = pipe.config.default_fps
    fps = int(fps) if float(fps).is_integer() else fps
    seeds = [seed + i for i in range(max(len(DEMO_PROMPTS) + 1, len(DEMO_JOINT_PROMPTS)))]

    def timed(name: str, method, **kwargs):
        start = time.perf_counter()
        output = method(num_inference_steps=steps, **kwargs)
        seconds[name] = round(time.perf_counter() - start, 3)
        return output

    videos = timed(
        "generate",
        pipe.generate_video,
        prompt=list(DEMO_PROMPTS),
        generator=[_cpu_generator(seed) for seed in seeds[: len(DEMO_PROMPTS)]],
        output_type="np",
    ).frames

    to_caption = list(videos)
    labels = [f"video {i} ({prompt})" for i, prompt in enumerate(DEMO_PROMPTS, 1)]
    sample_frames = None
    if sample_path is not None and os.path.isfile(sample_path):
        sample_frames = load_video_file(sample_path).permute(0, 2, 3, 1).numpy()
        to_caption.append(sample_frames)
        labels.append(f"{os.path.basename(sample_path)} (shipped held-out clip)")
    else:
        logger.warning("univigu_hf.SAMPLE_VIDEO is missing: the demo captions only the generated videos")
    captions = timed(
        "caption",
        pipe.caption,
        video=to_caption,
        generator=[_cpu_generator(seed) for seed in seeds[: len(to_caption)]],
    ).text

    joint = timed(
        "joint",
        pipe.generate_joint,
        prompt=list(DEMO_JOINT_PROMPTS),
        generator=[_cpu_generator(seed) for seed in seeds[: len(DEMO_JOINT_PROMPTS)]],
        output_type="np",
    )

    start = time.perf_counter()
    generated = []
    for i, (prompt, frames) in enumerate(zip(DEMO_PROMPTS, videos), 1):
        detected = detect_attributes(frames)
        generated.append(
            {
                "prompt": prompt,
                "split": prompt_split(prompt),
                "seed": seeds[i - 1],
                "detected": detected,
                "prompt_vs_video": compare_attributes(parse_caption(prompt), detected, PROMPT_ATTRIBUTES),
                "files": _save_clip(frames, output_dir, f"t2v_{i}_{_slug(prompt)}", fps),
            }
        )
    captioned = []
    for i, (label, frames, caption) in enumerate(zip(labels, to_caption, captions)):
        detected = detect_attributes(frames)
        is_sample = sample_frames is not None and i == len(to_caption) - 1
        item = {
            "video": sample_path if is_sample else generated[i]["files"]["mp4"],
            "label": label,
            "source": "sample" if is_sample else "generated",
            "seed": seeds[i],
            "caption": caption,
            "parsed": parse_caption(caption),
            "detected": detected,
        }
        item["caption_vs_video"] = compare_attributes(item["parsed"], detected, ATTRIBUTES)
        if is_sample:
            item["png"] = "sample_video.png"
            write_frame_strip(frames, os.path.join(output_dir, item["png"]))
        captioned.append(item)
    joint_items = []
    for i, (prompt, frames, caption) in enumerate(zip(DEMO_JOINT_PROMPTS, joint.frames, joint.text), 1):
        detected = detect_attributes(frames)
        parsed = parse_caption(caption)
        joint_items.append(
            {
                "prompt": prompt,
                "split": prompt_split(prompt),
                "seed": seeds[i - 1],
                "caption": caption,
                "parsed": parsed,
                "detected": detected,
                "caption_vs_video": compare_attributes(parsed, detected, ATTRIBUTES),
                "prompt_vs_video": compare_attributes(parse_caption(prompt), detected, PROMPT_ATTRIBUTES),
                "files": _save_clip(frames, output_dir, f"joint_{i}_{_slug(prompt)}", fps),
            }
        )
    clips = len(generated) + len(joint_items)
    counts = {"mp4": clips, "gif": clips, "png": clips + (sample_frames is not None)}

    height, width = videos.shape[2:4]
    report = {
        "univigu_hf": __version__,
        "model": model_name,
        "output_dir": output_dir,
        "settings": {
            "num_inference_steps": steps,
            "guidance_scale": pipe.config.default_guidance_scale,
            "seed": seed,
            "height": int(height),
            "width": int(width),
            "num_frames": int(videos.shape[1]),
            "fps": fps,
            "device": device,
            "dtype": dtype,
        },
        "generate": generated,
        "caption": captioned,
        "joint": joint_items,
        "files_written": counts,
    }
    seconds["detect_and_write"] = round(time.perf_counter() - start, 3)
    seconds["total"] = round(time.perf_counter() - start_all + load_seconds, 3)
    report["seconds"] = seconds
    write_report(report, output_dir)
    return report
