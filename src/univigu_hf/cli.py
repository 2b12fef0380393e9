"""The `univigu` command's commands: what `generate`, `caption`, `joint`, `demo`, `card` and `push` do once their
arguments are parsed. The arguments, `--help` and `--version` are in the standard-library-only front module
`univigu_hf_cli` (so they answer without importing torch); [`main`] is the same entry point.

`generate`, `caption` and `joint` run `UniViGUPipeline.generate_video` / `caption` / `generate_joint` on a saved
pipeline (`--model`: a folder or a Hub repo id; default: the embedded shapes-world model `univigu_hf.DEFAULT_MODEL`;
see docs/pipelines.md). `demo` runs the three tasks on a few shapes-world prompts (some held out from training),
reads the generated videos back with the shapes-world detectors and writes the videos (mp4 and gif), PNG frame
strips, `report.md` and `report.json` (see docs/demo.md).
"""

import argparse
import contextlib
import json
import os
import random
import sys
import time
from collections.abc import Iterator
from typing import Any

import torch
from diffusers.utils import logging

from .utils.saving import write_text_atomic


logger = logging.get_logger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".gif")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
FOUNDATION_STEPS = 8  # denoising steps per mode of `univigu demo --foundation`


class CLIError(Exception):
    """A user error: `main` prints `univigu <command>: error: <message>` on stderr and returns 2 (no traceback)."""


# --------------------------------------------------------------------------------------------------------------------
# generate / caption / joint
# --------------------------------------------------------------------------------------------------------------------
def _check_output(path: str) -> str:
    extension = os.path.splitext(path)[1].lower()
    if extension not in VIDEO_EXTENSIONS:
        raise CLIError(
            f"--output must end in {' or '.join(VIDEO_EXTENSIONS)} (the format follows the extension), got {path!r}"
        )
    _check_writable(path, "--output")
    return path


def _resolve_model(model: str | None) -> str:
    if model is None:
        import univigu_hf

        model = getattr(univigu_hf, "DEFAULT_MODEL", None)
        if model is None:
            raise CLIError("no default model is bundled with this version; pass --model FOLDER_OR_REPO_ID")
    return model


def _looks_local(model: str) -> bool:
    return os.path.isabs(model) or model.startswith((".", "~")) or model.count("/") > 1 or "\\" in model


def _load_pipeline(args: argparse.Namespace):
    """Loads the `UniViGUPipeline` named by `--model` on `--device` in `--dtype`."""
    from .pipelines import UniViGUPipeline

    model = _resolve_model(args.model)
    try:
        device = torch.device(args.device)
    except RuntimeError as error:
        raise CLIError(
            f"--device: not a torch device: {args.device!r} (accepted: cpu, cuda, cuda:N, mps, ...)"
        ) from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {args.device} was asked for but CUDA is not available (use --device cpu)")
    path = os.path.expanduser(model)
    if _looks_local(model) and not os.path.exists(path):
        raise CLIError(f"model folder not found: {model!r} (pass a saved UniViGUPipeline folder or a Hub repo id)")
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "model_index.json")):
        raise CLIError(f"{model!r} is not a saved UniViGUPipeline folder (it has no model_index.json)")
    logger.info(f"Loading the UniViGUPipeline from {model!r} ({args.dtype}, {device})")
    try:
        pipe = UniViGUPipeline.from_pretrained(path if os.path.isdir(path) else model, dtype=DTYPES[args.dtype])
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise CLIError(f"could not load the model {model!r}: {_first_line(error)}") from error
    try:
        pipe.to(device)
    except (RuntimeError, AssertionError) as error:  # e.g. a GPU index that does not exist
        raise CLIError(f"could not move the model to --device {args.device}: {_first_line(error)}") from error
    pipe.set_progress_bar_config(disable=args.quiet)
    return pipe


@contextlib.contextmanager
def _quiet_libraries(quiet: bool) -> Iterator[None]:
    """With `quiet`, silences diffusers'/transformers' progress bars and warnings for the duration (then restores)."""
    if not quiet:
        yield
        return
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    libraries = (diffusers_logging, transformers_logging)
    saved = [(library.get_verbosity(), library.is_progress_bar_enabled()) for library in libraries]
    try:
        for library in libraries:
            library.disable_progress_bar()
            library.set_verbosity_error()
        yield
    finally:
        for library, (verbosity, progress) in zip(libraries, saved):
            library.set_verbosity(verbosity)
            if progress:
                library.enable_progress_bar()


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _generator(seed: int) -> torch.Generator:
    # A CPU generator: the same seed gives the same noise on every device.
    return torch.Generator("cpu").manual_seed(seed)


def _size_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    names = ("height", "width", "num_frames")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _fps(fps: float | None, pipe) -> int | float:
    fps = pipe.config.default_fps if fps is None else fps
    return int(fps) if float(fps).is_integer() else fps


def _run_pipeline(method, **kwargs):
    try:
        return method(**kwargs)
    except (ValueError, TypeError) as error:  # the pipeline's own argument checks
        raise CLIError(" ".join(str(error).split())) from error


def _emit(args: argparse.Namespace, report: dict[str, Any], lines: list[str]) -> None:
    if args.json:
        print(json.dumps(report))
    else:
        for line in lines:
            print(line)


def _save_and_report(args, pipe, task: str, frames, text, seed: int, seconds: float) -> None:
    """Writes the generated video and prints the human or JSON report of a generate/joint run."""
    from .pipelines.video_io import write_video

    fps = _fps(args.fps, pipe)
    try:
        write_video(frames, args.output, fps)
    except OSError as error:
        raise CLIError(f"could not write {args.output!r}: {_first_line(error)}") from error
    num_frames, height, width = frames.shape[:3]
    report = {
        "task": task,
        "output": args.output,
        "text": text,
        "prompt": args.prompt,
        "seed": seed,
        "num_frames": int(num_frames),
        "height": int(height),
        "width": int(width),
        "fps": fps,
        "seconds": round(seconds, 3),
    }
    lines = [f"Saved {num_frames} frames ({width}x{height}, {fps} fps, seed {seed}) to {args.output}"]
    _emit(args, report, lines if text is None else [text, *lines])


def _run_generation(args: argparse.Namespace, task: str, method_name: str, **task_kwargs) -> int:
    """The shared body of `generate` and `joint`: check, load, run seeded and timed, write the video, report."""
    _check_output(args.output)
    pipe = _load_pipeline(args)
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    start = time.perf_counter()
    output = _run_pipeline(
        getattr(pipe, method_name),
        prompt=args.prompt,
        negative_prompt=args.negative_prompt,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance_scale,
        generator=_generator(seed),
        output_type="np",
        **task_kwargs,
        **_size_kwargs(args),
    )
    text = None if output.text is None else output.text[0]
    _save_and_report(args, pipe, task, output.frames[0], text, seed, time.perf_counter() - start)
    return 0


def _generate(args: argparse.Namespace) -> int:
    """`univigu generate`: text -> video file."""
    return _run_generation(args, "generate", "generate_video")


def _distributed_state(args: argparse.Namespace):
    """
    accelerate's `PartialState` when the command runs in several processes (`accelerate launch --num_processes N`),
    else `None`. CPU processes communicate over gloo; `--device cuda` becomes each process's own GPU.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState

    try:
        on_cpu = torch.device(args.device).type == "cpu"
    except RuntimeError as error:
        raise CLIError(f"--device: not a torch device: {args.device!r}") from error
    state = PartialState(cpu=on_cpu)
    if state.num_processes <= 1:
        return None
    if args.device == "cuda":
        args.device = str(state.device)
    return state


def _caption(args: argparse.Namespace) -> int:
    """
    `univigu caption`: video files -> captions. Under `accelerate launch` with several processes the videos are
    split between the processes (`PartialState.split_between_processes`), each loads the model on its device and
    captions its share, and the main process reports all captions in the input order. Every video gets its own
    generator seeded with `--seed`, so a caption does not depend on the number of processes.
    """
    from .pipelines.video_io import open_video_file

    for path in args.videos:
        if not os.path.isfile(path):
            raise CLIError(f"video file not found: {path!r}")
    state = _distributed_state(args)
    paths = list(args.videos)
    if state is not None:
        with state.split_between_processes(paths) as share:
            paths = list(share)
    videos = []
    for path in paths:
        try:
            videos.append(open_video_file(path))  # counted now, decoded frame by frame when captioned
        except (FileNotFoundError, ValueError) as error:
            cause = error.__cause__ if error.__cause__ is not None else error
            raise CLIError(f"could not read {path!r} as a video ({_first_line(cause)})") from error
    pipe = _load_pipeline(args)
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    if state is not None:
        from accelerate.utils import broadcast_object_list

        seed = broadcast_object_list([seed])[0]  # the main process's, so the report holds for every caption
    start = time.perf_counter()
    texts = []
    if videos:
        # One generator per video: a video gets the same caption alone or with others.
        texts = _run_pipeline(
            pipe.caption,
            video=videos,
            prompt=args.prompt,
            max_text_length=args.max_text_length,
            num_inference_steps=args.steps,
            generator=[_generator(seed) for _ in videos],
            video_cache=args.video_cache,
            video_cache_refresh=args.video_cache_refresh,
            **_size_kwargs(args),
        ).text
    if state is not None:
        from accelerate.utils import gather_object

        texts = gather_object(texts)
        if not state.is_main_process:
            return 0
    seconds = time.perf_counter() - start
    report = {
        "task": "caption",
        "videos": list(args.videos),
        "text": texts,
        "seed": seed,
        "seconds": round(seconds, 3),
    }
    if state is not None:
        report["num_processes"] = state.num_processes
    if len(texts) == 1:
        lines = texts
    else:
        lines = [f"{path}: {text}" for path, text in zip(args.videos, texts)]
    _emit(args, report, lines)
    return 0


def _joint(args: argparse.Namespace) -> int:
    """`univigu joint`: text -> video file + caption."""
    return _run_generation(args, "joint", "generate_joint", max_text_length=args.max_text_length)


# --------------------------------------------------------------------------------------------------------------------
# demo
# --------------------------------------------------------------------------------------------------------------------
def _check_output_dir(path: str) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise CLIError(f"--output_dir exists and is not a folder: {path!r}")


def _make_output_dir(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise CLIError(f"could not create --output_dir {path!r}: {_first_line(error)}") from error


def _demo(args: argparse.Namespace) -> int:
    """`univigu demo`: the embedded shapes-world model (or `--model`) in all three tasks (`shapes.demo.run_demo`)."""
    if args.foundation:
        from .utils.testing import foundation_demo

        report = foundation_demo(args.seed, args.steps, args.vocab_size, args.text_length)
        print(json.dumps(report, indent=2))
        print(
            "Foundation demo OK: the unified model reproduces its Wan base and runs text->video, video->text and "
            "joint flows (random weights; `univigu demo` without --foundation runs the trained embedded model)."
        )
        return 0 if report["prior_preservation_max_abs_diff"] <= 1e-5 else 1
    import univigu_hf

    from .shapes.demo import demo_summary, run_demo

    _check_output_dir(args.output_dir)  # before the model loads; the folder is made once the model is loaded
    start = time.perf_counter()
    pipe = _load_pipeline(args)
    load_seconds = time.perf_counter() - start
    _make_output_dir(args.output_dir)
    try:
        report = run_demo(
            pipe,
            args.output_dir,
            num_inference_steps=args.steps,
            seed=args.seed,
            sample_path=getattr(univigu_hf, "SAMPLE_VIDEO", None),
            model_name=_resolve_model(args.model),
            device=args.device,
            dtype=args.dtype,
            load_seconds=load_seconds,
        )
    except (ValueError, TypeError) as error:  # the pipeline's own argument checks
        raise CLIError(" ".join(str(error).split())) from error
    except OSError as error:
        raise CLIError(f"could not write the demo into {args.output_dir!r}: {_first_line(error)}") from error
    _emit(args, report, demo_summary(report))
    return 0


def _calibrate_mag_cache(args: argparse.Namespace) -> int:
    """`univigu calibrate-mag-cache`: MagCache's magnitude ratios for a model, printed (and written to --output)."""
    from .models.diffusers_toolbox import calibrate_mag_ratios

    prompts = args.prompt
    if prompts is None:
        if args.model is not None:
            raise CLIError("--prompt is required with --model (give a few prompts like the model's training data)")
        from .shapes import TRAIN_PROMPTS

        prompts = list(TRAIN_PROMPTS[:8])
    if args.output:
        _check_writable(args.output, "--output")
    pipe = _load_pipeline(args)
    steps = args.steps if args.steps is not None else pipe.config.default_num_inference_steps
    mean = _run_pipeline(
        calibrate_mag_ratios,
        pipe=pipe,
        prompts=prompts,
        num_inference_steps=steps,
        guidance_scale=args.guidance_scale,
        generator=[_generator(args.seed + i) for i in range(len(prompts))],
    )
    report = {"num_inference_steps": steps, "mag_ratios": mean, "prompts": prompts, "seed": args.seed}
    if args.output:
        try:
            write_text_atomic(args.output, json.dumps(report, indent=2) + "\n")
        except OSError as error:
            raise CLIError(f"could not write --output {args.output!r}: {_first_line(error)}") from error
    _emit(args, report, [f"MagCacheConfig(mag_ratios={mean}, num_inference_steps={steps})"])
    return 0


def _check_writable(path: str, option: str) -> None:
    """Refuses a file target that cannot be written, before any model runs (so no run is lost to it)."""
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CLIError(f"{option} {path!r} is a folder; give a file name")
    if not os.path.isdir(parent):
        raise CLIError(f"the folder of {option} does not exist: {parent!r}")
    if not os.access(parent, os.W_OK):
        raise CLIError(f"the folder of {option} is not writable: {parent!r}")


def _card(args: argparse.Namespace) -> int:
    """`univigu card`: writes (or prints) the model card `push` would upload."""
    from .hub import card_metadata, create_model_card

    try:
        card = create_model_card(
            args.folder, repo_id=args.repo_id, metrics=args.metrics, base_model=args.base_model, training=args.training
        )
    except (ValueError, TypeError, OSError) as error:
        raise CLIError(" ".join(str(error).split())) from error
    if args.output:
        try:
            write_text_atomic(args.output, str(card))
        except OSError as error:
            raise CLIError(f"could not write --output {args.output!r}: {_first_line(error)}") from error
        lines = [f"Wrote the model card of {args.folder} to {args.output}"]
    else:
        lines = [str(card)]
    _emit(args, {"output": args.output, "metadata": card_metadata(card), "card": str(card)}, lines)
    return 0


def _push(args: argparse.Namespace) -> int:
    """`univigu push`: publishes a saved pipeline/model/adapter folder with its model card."""
    from .hub import HubPushError, push_to_hub

    try:
        info = push_to_hub(
            args.folder,
            args.repo_id,
            private=args.private,
            commit_message=args.message,
            metrics=args.metrics,
            base_model=args.base_model,
            training=args.training,
            token=args.token,
            revision=args.revision,
            create_pr=args.create_pr,
            ignore_patterns=args.ignore,
        )
    except (HubPushError, ValueError, TypeError, OSError) as error:
        raise CLIError(" ".join(str(error).split())) from error
    report = {"repo_id": info.repo_url.repo_id, "commit_url": info.commit_url, "commit": info.oid}
    report["pr_url"] = info.pr_url
    _emit(args, report, [f"Pushed {args.folder} to {info.repo_url} ({info.commit_url})"])
    return 0


HANDLERS = {
    "generate": _generate,
    "caption": _caption,
    "joint": _joint,
    "demo": _demo,
    "calibrate-mag-cache": _calibrate_mag_cache,
    "card": _card,
    "push": _push,
}


def run(args: argparse.Namespace) -> int:
    """
    Runs the command of parsed `univigu` arguments (see `univigu_hf_cli.build_parser`).

    Returns:
        `int`: the exit status (0 success, 1 failed demo check, 2 usage / input error).
    """
    try:
        with _quiet_libraries(getattr(args, "quiet", False)):
            return HANDLERS[args.command](args)
    except CLIError as error:
        print(f"univigu {args.command}: error: {error}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    """The `univigu` entry point (`univigu_hf_cli.main`): `python -m univigu_hf.cli ...` runs the same command."""
    from univigu_hf_cli import main as front

    return front(argv)


if __name__ == "__main__":
    raise SystemExit(main())
