"""`univigu generate`, `univigu caption` and `univigu joint`."""

import argparse
import os
import random
import sys
import time

from ._common import (
    CLIError,
    check_output,
    emit,
    first_line,
    load_pipeline,
    resolve_fps,
    run_pipeline,
    seeded_generator,
    size_kwargs,
)


def _save_and_report(args, pipe, task: str, frames, text, seed: int, seconds: float) -> None:
    """Writes the generated video and prints the human or JSON report of a generate/joint run."""
    from ..pipelines.video_io import write_video

    fps = resolve_fps(args.fps, pipe)
    try:
        write_video(frames, args.output, fps)
    except OSError as error:
        raise CLIError(f"could not write {args.output!r}: {first_line(error)}") from error
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
    emit(args, report, lines if text is None else [text, *lines])


def _run_generation(args: argparse.Namespace, task: str, method_name: str, **task_kwargs) -> int:
    """The shared body of `generate` and `joint`: check, load, run seeded and timed, write the video, report."""
    check_output(args.output)
    pipe = load_pipeline(args)
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    start = time.perf_counter()
    output = run_pipeline(
        getattr(pipe, method_name),
        prompt=args.prompt,
        negative_prompt=args.negative_prompt,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance_scale,
        generator=seeded_generator(seed),
        output_type="np",
        **task_kwargs,
        **size_kwargs(args),
    )
    text = None if output.text is None else output.text[0]
    _save_and_report(args, pipe, task, output.frames[0], text, seed, time.perf_counter() - start)
    return 0


def generate(args: argparse.Namespace) -> int:
    """`univigu generate`: text -> video file."""
    return _run_generation(args, "generate", "generate_video")


def _distributed_state(args: argparse.Namespace):
    """
    accelerate's `PartialState` when the command runs in several processes (`accelerate launch --num_processes N`),
    else `None`. CPU processes communicate over gloo; `--device cuda` becomes each process's own GPU.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
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


def caption(args: argparse.Namespace) -> int:
    """
    `univigu caption`: video files -> captions. Under `accelerate launch` with several processes the videos are
    split between the processes (`PartialState.split_between_processes`), each loads the model on its device and
    captions its share, and the main process reports all captions in the input order. Every video gets its own
    generator seeded with `--seed`, so a caption does not depend on the number of processes, nor on the other videos.

    A video that cannot be read does not lose the others: each failure is reported on stderr with its file, the
    readable videos are captioned, and the exit status is 1 (2 when no video could be read).
    """
    missing = [path for path in args.videos if not os.path.isfile(path)]
    if len(missing) == len(args.videos):
        raise CLIError(
            f"video file not found: {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if missing[1:] else "")
        )
    state = _distributed_state(args)
    paths = list(args.videos)
    if state is not None:
        with state.split_between_processes(paths) as share:
            paths = list(share)
    videos, failures = _open_videos(paths)
    pipe = load_pipeline(args)
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    if state is not None:
        from accelerate.utils import broadcast_object_list

        seed = broadcast_object_list([seed])[0]  # the main process's, so the report holds for every caption
    start = time.perf_counter()
    texts = _caption_videos(args, pipe, videos, seed, failures)
    results = [(path, texts.get(path), failures.get(path)) for path in paths]
    if state is not None:
        from accelerate.utils import gather_object

        results = gather_object(results)
        if not state.is_main_process:
            return 0
    for failure in (failure for _, _, failure in results if failure is not None):
        print(f"univigu caption: error: {failure}", file=sys.stderr)
    report = {
        "task": "caption",
        "videos": list(args.videos),
        "text": [text for _, text, _ in results],
        "errors": {path: failure for path, _, failure in results if failure is not None},
        "seed": seed,
        "seconds": round(time.perf_counter() - start, 3),
    }
    if state is not None:
        report["num_processes"] = state.num_processes
    captioned = [(path, text) for path, text, failure in results if failure is None]
    lines = [text for _, text in captioned] if len(args.videos) == 1 else [f"{p}: {t}" for p, t in captioned]
    emit(args, report, lines)
    if not report["errors"]:
        return 0
    return 1 if captioned else 2


def _open_videos(paths: list[str]) -> tuple[dict, dict]:
    """Opens each video file (its frames counted, decoded later); returns `({path: clip}, {path: error message})`."""
    from ..pipelines.video_io import open_video_file

    videos, failures = {}, {}
    for path in paths:
        try:
            videos[path] = open_video_file(path)
        except (FileNotFoundError, ValueError) as error:
            failures[path] = _read_failure(path, error)
    return videos, failures


def _read_failure(path: str, error: Exception) -> str:
    if isinstance(error, FileNotFoundError):
        return f"video file not found: {path!r}"
    cause = error.__cause__ if error.__cause__ is not None else error
    return f"could not read {path!r} as a video ({first_line(cause)})"


def _caption_videos(args: argparse.Namespace, pipe, videos: dict, seed: int, failures: dict) -> dict[str, str]:
    """Captions the opened videos in one batch; if one fails while its frames are decoded, captions them one by one
    (the same captions: each video has its own generator) so that only that video is lost (added to `failures`)."""

    def run(clips):
        return run_pipeline(
            pipe.caption,
            video=clips,
            prompt=args.prompt,
            max_text_length=args.max_text_length,
            num_inference_steps=args.steps,
            generator=[seeded_generator(seed) for _ in clips],
            video_cache=args.video_cache,
            video_cache_refresh=args.video_cache_refresh,
            **size_kwargs(args),
        ).text

    if not videos:
        return {}
    try:
        return dict(zip(videos, run(list(videos.values()))))
    except CLIError:
        if len(videos) == 1:
            raise
    texts = {}
    for path, clip in videos.items():
        try:
            texts[path] = run([clip])[0]
        except CLIError as error:
            failures[path] = f"could not caption {path!r}: {error}"
    return texts


def joint(args: argparse.Namespace) -> int:
    """`univigu joint`: text -> video file + caption."""
    return _run_generation(args, "joint", "generate_joint", max_text_length=args.max_text_length)
