"""What the `univigu` commands share: loading the pipeline, quieting the libraries, checking output paths, and the
one-line user error (`CLIError`). Standard library only at module level, as for `univigu_hf.cli`."""

import argparse
import contextlib
import json
import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any


if TYPE_CHECKING:
    import torch


logger = logging.getLogger("univigu_hf.cli")

DTYPE_NAMES = ("bfloat16", "float16", "float32")
VIDEO_EXTENSIONS = (".mp4", ".gif")  # what generate/joint write, by the --output extension


class CLIError(Exception):
    """A user error: `main` prints `univigu <command>: error: <message>` on stderr and returns 2 (no traceback)."""


def check_output(path: str) -> str:
    extension = os.path.splitext(path)[1].lower()
    if extension not in VIDEO_EXTENSIONS:
        raise CLIError(
            f"--output must end in {' or '.join(VIDEO_EXTENSIONS)} (the format follows the extension), got {path!r}"
        )
    check_writable(path, "--output")
    return path


def resolve_model(model: str | None) -> str:
    if model is None:
        import univigu_hf

        model = getattr(univigu_hf, "DEFAULT_MODEL", None)
        if model is None:
            raise CLIError("no default model is bundled with this version; pass --model FOLDER_OR_REPO_ID")
    return model


def looks_local(model: str) -> bool:
    return os.path.isabs(model) or model.startswith((".", "~")) or model.count("/") > 1 or "\\" in model


def load_pipeline(args: argparse.Namespace):
    """Loads the `UniViGUPipeline` named by `--model` on `--device` in `--dtype`."""
    import torch

    from ..pipelines import UniViGUPipeline

    model = resolve_model(args.model)
    try:
        device = torch.device(args.device)
    except RuntimeError as error:
        raise CLIError(
            f"--device: not a torch device: {args.device!r} (accepted: cpu, cuda, cuda:N, mps, ...)"
        ) from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {args.device} was asked for but CUDA is not available (use --device cpu)")
    path = os.path.expanduser(model)
    if looks_local(model) and not os.path.exists(path):
        raise CLIError(f"model folder not found: {model!r} (pass a saved UniViGUPipeline folder or a Hub repo id)")
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "model_index.json")):
        raise CLIError(f"{model!r} is not a saved UniViGUPipeline folder (it has no model_index.json)")
    logger.info(f"Loading the UniViGUPipeline from {model!r} ({args.dtype}, {device})")
    try:
        pipe = UniViGUPipeline.from_pretrained(
            path if os.path.isdir(path) else model, dtype=getattr(torch, args.dtype)
        )
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise CLIError(f"could not load the model {model!r}: {first_line(error)}") from error
    try:
        pipe.to(device)
    except (RuntimeError, AssertionError) as error:  # e.g. a GPU index that does not exist
        raise CLIError(f"could not move the model to --device {args.device}: {first_line(error)}") from error
    pipe.set_progress_bar_config(disable=args.quiet)
    return pipe


@contextlib.contextmanager
def quiet_libraries(quiet: bool) -> Iterator[None]:
    """With `quiet`, silences diffusers'/transformers' progress bars and warnings and this library's own warnings
    (e.g. a retried video read) for the duration, then restores them. Errors are still printed."""
    if not quiet:
        yield
        return
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    libraries = (diffusers_logging, transformers_logging)
    saved = [(library.get_verbosity(), library.is_progress_bar_enabled()) for library in libraries]
    own = logging.getLogger("univigu_hf")
    own_level = own.level
    try:
        for library in libraries:
            library.disable_progress_bar()
            library.set_verbosity_error()
        own.setLevel(logging.ERROR)
        yield
    finally:
        own.setLevel(own_level)
        for library, (verbosity, progress) in zip(libraries, saved):
            library.set_verbosity(verbosity)
            if progress:
                library.enable_progress_bar()


def first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def seeded_generator(seed: int) -> "torch.Generator":
    import torch

    # A CPU generator: the same seed gives the same noise on every device.
    return torch.Generator("cpu").manual_seed(seed)


def size_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    names = ("height", "width", "num_frames")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def resolve_fps(fps: float | None, pipe) -> int | float:
    fps = pipe.config.default_fps if fps is None else fps
    return int(fps) if float(fps).is_integer() else fps


def run_pipeline(method, **kwargs):
    try:
        return method(**kwargs)
    except (ValueError, TypeError) as error:  # the pipeline's own argument checks
        raise CLIError(" ".join(str(error).split())) from error


def emit(args: argparse.Namespace, report: dict[str, Any], lines: list[str]) -> None:
    if args.json:
        print(json.dumps(report))
    else:
        for line in lines:
            print(line)


def check_output_dir(path: str) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise CLIError(f"--output_dir exists and is not a folder: {path!r}")


def make_output_dir(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise CLIError(f"could not create --output_dir {path!r}: {first_line(error)}") from error


def check_writable(path: str, option: str) -> None:
    """Refuses a file target that cannot be written, before any model runs (so no run is lost to it)."""
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CLIError(f"{option} {path!r} is a folder; give a file name")
    if not os.path.isdir(parent):
        raise CLIError(f"the folder of {option} does not exist: {parent!r}")
    if not os.access(parent, os.W_OK):
        raise CLIError(f"the folder of {option} is not writable: {parent!r}")
