"""The `univigu` command: its arguments, `--help`, `--version`, argument errors, and what each command does.

    univigu generate --prompt "..." --output out.mp4   text -> video (mp4 or gif)
    univigu caption VIDEO [VIDEO ...]                  video -> text (several processes: `accelerate launch -m
                                                       univigu_hf.cli caption ...` splits the videos)
    univigu joint --prompt "..." --output out.mp4      text -> video + caption
    univigu convert --checkpoint X.pth --wan-config DIR --output DIR   official checkpoint -> safetensors
    univigu demo [--output_dir outputs/demo]           the embedded model in all three tasks, with a report
    univigu demo --foundation                          the foundation demo on a tiny random model
    univigu calibrate-mag-cache [--model DIR]          MagCache's magnitude ratios for a model
    univigu card FOLDER [--output README.md]          the model card of a saved pipeline/model/adapter
    univigu push FOLDER REPO_ID [--private]           publish it on the Hub with its card (docs/hub.md)

`generate`, `caption` and `joint` run `UniViGUPipeline.generate_video` / `caption` / `generate_joint` on a saved
pipeline (`--model`: a folder or a Hub repo id; default: the embedded shapes-world model `univigu_hf.DEFAULT_MODEL`).
`demo` runs the three tasks on a few shapes-world prompts (some held out from training), reads the generated videos
back with the shapes-world detectors and writes the videos (mp4 and gif), PNG frame strips, `report.md` and
`report.json` (see docs/demo.md).

At module level this imports only the standard library (and `univigu_hf`, which is lazy), so `--help`, `--version`
and argument errors answer at once; torch, diffusers and transformers are imported by the command that runs.
"""

import argparse
import importlib.metadata
import logging
import math
import os
import sys
from typing import TYPE_CHECKING

from . import __version__
from .commands._common import DTYPE_NAMES, CLIError, quiet_libraries


if TYPE_CHECKING:
    pass


logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------------------------
# arguments (standard library only)
# --------------------------------------------------------------------------------------------------------------------
MAX_STEPS = 1000  # the schedulers' training timesteps; more steps than that only repeat timesteps
MAX_SIZE = 2**16  # pixels or frames; the pipeline then checks the model's own limits
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed's range (non-negative part)


def package_version() -> str:
    """The installed `univigu_hf` version (the source tree's `__version__` when it is not installed)."""
    try:
        return importlib.metadata.version("univigu_hf")
    except importlib.metadata.PackageNotFoundError:
        return __version__


class OneLineParser(argparse.ArgumentParser):
    """An `ArgumentParser` whose errors are one line, `univigu <command>: error: <message>`, with exit status 2 (the
    usage is what `--help` is for)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def integer_in(low: int, high: int):
    """An argparse type: an integer in `[low, high]`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be an integer in [{low}, {high}], got {value}")
        return value

    return parse


def finite_number(low: float = -math.inf, high: float = math.inf, low_inclusive: bool = True):
    """An argparse type: a finite float in `[low, high]` (`(low, high]` with `low_inclusive=False`)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if value < low or (value == low and not low_inclusive) or value > high:
            bracket = "[" if low_inclusive else "("
            raise argparse.ArgumentTypeError(f"must be a number in {bracket}{low:g}, {high:g}], got {value:g}")
        return value

    return parse


STEPS = integer_in(1, MAX_STEPS)
SIZE = integer_in(1, MAX_SIZE)
SEED = integer_in(0, MAX_SEED)
COUNT = integer_in(1, 10**6)


def _add_card_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "folder", metavar="FOLDER", help="a saved UniViGUPipeline, UniViGUModel or LoRA adapter folder (or a "
        "training script's output_dir)",
    )  # fmt: skip
    parser.add_argument(
        "--metrics", help="evaluation metrics JSON for the card's results (e.g. docs/results/shapes.json)"
    )
    parser.add_argument("--base-model", help="the Hub repo this checkpoint derives from (card metadata)")
    parser.add_argument(
        "--training", help="training record JSON (default: the folder's training_summary.json, if any)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _add_common_arguments(parser: argparse.ArgumentParser, video_output: bool, text_output: bool) -> None:
    parser.add_argument(
        "--model",
        help="saved UniViGUPipeline folder or Hub repo id (default: the bundled model, when there is one)",
    )
    parser.add_argument("--steps", type=STEPS, help=f"denoising steps, 1..{MAX_STEPS} (default: the pipeline's)")
    parser.add_argument("--seed", type=SEED, help="random seed (default: a random one, reported in the output)")
    if video_output:
        parser.add_argument(
            "--guidance-scale", type=finite_number(), help="video CFG scale (<= 1: no CFG; default: the pipeline's)"
        )
        parser.add_argument("--negative-prompt", help="negative prompt for CFG (default: empty)")
    parser.add_argument("--height", type=SIZE, help="video height (multiple of 16; default: the config's)")
    parser.add_argument("--width", type=SIZE, help="video width (multiple of 16; default: the config's)")
    parser.add_argument("--num-frames", type=SIZE, help="frames, 4k+1 (default: the config's / the video's)")
    if text_output:
        parser.add_argument(
            "--max-text-length", type=COUNT, help="caption tokens, at most the model's (default: the model's)"
        )
    if video_output:
        parser.add_argument(
            "--fps",
            type=finite_number(0, 1000, low_inclusive=False),
            help="frame rate of the written video (default: the config's)",
        )
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default: cpu)")
    parser.add_argument("--dtype", default="float32", choices=DTYPE_NAMES, help="weights dtype (default: float32)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or library warnings")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def build_parser() -> argparse.ArgumentParser:
    """Builds the `univigu` argument parser (standard library only)."""
    parser = OneLineParser(
        prog="univigu",
        description="Uni-ViGU on Hugging Face: unified video generation and captioning on Wan2.1.",
    )
    parser.add_argument("--version", action="version", version=f"univigu_hf {package_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    generate = commands.add_parser("generate", help="generate a video from a prompt (mp4 or gif)")
    generate.add_argument("--prompt", required=True, help="the text prompt")
    generate.add_argument("--output", required=True, help="video file to write: .mp4 or .gif")
    _add_common_arguments(generate, video_output=True, text_output=False)

    caption = commands.add_parser("caption", help="caption one or more video files")
    caption.add_argument("videos", nargs="+", metavar="VIDEO", help="video files (mp4, gif, webm, ...)")
    caption.add_argument("--prompt", help="optional condition for the captioner (default: none)")
    caption.add_argument(
        "--video-cache",
        choices=("off", "exact", "approx"),
        help="video context cache: exact (models with video_attends_text=False; their default), approx (joint "
        "attention, an approximation), off (the default otherwise); see docs/pipeline.md",
    )
    caption.add_argument(
        "--video-cache-refresh",
        type=COUNT,
        help="with --video-cache approx: a full step every N steps (default: once)",
    )
    _add_common_arguments(caption, video_output=False, text_output=True)

    joint = commands.add_parser("joint", help="generate a video and its caption together from a prompt")
    joint.add_argument("--prompt", required=True, help="the text prompt")
    joint.add_argument("--output", required=True, help="video file to write: .mp4 or .gif")
    _add_common_arguments(joint, video_output=True, text_output=True)

    commands.add_parser(
        "convert",
        help="convert an official Uni-ViGU .pth checkpoint to a safetensors UniViGUModel folder",
        add_help=False,
    )

    demo = commands.add_parser(
        "demo",
        help="run the embedded model in all three tasks and write a report (CPU, well under a minute)",
        description="Runs text -> video, video -> text and joint generation on a few shapes-world prompts (some "
        "held out from training), reads the generated videos back with the shapes-world detectors, prints a summary "
        "and writes the videos (mp4 and gif), PNG frame strips, report.md and report.json into --output_dir. "
        "--foundation runs the older foundation demo on a tiny random model instead.",
    )
    demo.add_argument(
        "--model", help="saved UniViGUPipeline folder or Hub repo id (default: the embedded shapes-world model)"
    )
    demo.add_argument(
        "--output-dir", "--output_dir", dest="output_dir", default=os.path.join("outputs", "demo"),
        help="folder for the videos, frame strips and reports (default: outputs/demo)",
    )  # fmt: skip
    demo.add_argument(
        "--steps", type=STEPS, help="denoising steps per task (default: the pipeline config's; --foundation: 8)"
    )
    demo.add_argument("--seed", type=SEED, default=0, help="sample i of each task uses seed + i (default: 0)")
    demo.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda (default: cpu)")
    demo.add_argument("--dtype", default="float32", choices=DTYPE_NAMES, help="weights dtype (default: float32)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars or library warnings")
    demo.add_argument("--json", action="store_true", help="print report.json's object instead of the summary")
    demo.add_argument(
        "--foundation", action="store_true", help="run the foundation demo on a tiny random model instead"
    )
    demo.add_argument("--text-length", type=COUNT, default=16, help="--foundation: caption tokens (default: 16)")
    demo.add_argument(
        "--vocab-size", type=COUNT, default=128, help="--foundation: caption vocabulary of the tiny model"
    )

    calibrate = commands.add_parser(
        "calibrate-mag-cache",
        help="measure MagCache's magnitude ratios for a model (diffusers' MagCacheConfig(mag_ratios=...))",
        description="Runs text -> video with MagCacheConfig(calibrate=True) (nothing is skipped) on the prompts and "
        "prints the ratios, averaged over the runs, for MagCacheConfig(mag_ratios=..., num_inference_steps=...). "
        "See docs/scaling.md.",
    )
    calibrate.add_argument(
        "--model", help="saved UniViGUPipeline folder or Hub repo id (default: the embedded shapes-world model)"
    )
    calibrate.add_argument(
        "--prompt", action="append", help="a calibration prompt (repeat; default for the embedded model: 8 of its "
        "training prompts)",
    )  # fmt: skip
    calibrate.add_argument("--steps", type=STEPS, help="denoising steps the ratios are for (default: the pipeline's)")
    calibrate.add_argument("--guidance-scale", type=finite_number(), help="CFG scale (default: the pipeline's)")
    calibrate.add_argument("--seed", type=SEED, default=0, help="prompt i uses seed + i (default: 0)")
    calibrate.add_argument("--output", help="also write the ratios to this JSON file")
    calibrate.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda (default: cpu)")
    calibrate.add_argument("--dtype", default="float32", choices=DTYPE_NAMES, help="weights dtype (default: float32)")
    calibrate.add_argument("--quiet", action="store_true", help="no progress bars or library warnings")
    calibrate.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    card = commands.add_parser("card", help="write the model card of a saved checkpoint (what `push` uploads)")
    _add_card_arguments(card)
    card.add_argument("--repo-id", help="the repository the card is for (usage snippets; default: the folder name)")
    card.add_argument("--output", help="file to write (default: print the card)")

    push = commands.add_parser(
        "push",
        help="publish a saved checkpoint on the Hugging Face Hub with its model card",
        description="Creates REPO_ID if needed and uploads FOLDER (Trainer checkpoints, the prepared-data cache and "
        "pickle files left out) plus a generated README.md model card, in one commit. The folder is not modified. "
        "Token: --token, HF_TOKEN or `hf auth login`. See docs/hub.md.",
    )
    _add_card_arguments(push)
    push.add_argument("repo_id", metavar="REPO_ID", help="'name' (your namespace) or 'namespace/name'")
    push.add_argument("--private", action="store_true", help="create the repository private")
    push.add_argument("--message", help="commit message (default: 'Upload UniViGU <kind>')")
    push.add_argument("--token", help="a Hub token with write access (default: HF_TOKEN or the logged-in one)")
    push.add_argument("--revision", help="branch to commit to (default: main)")
    push.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    push.add_argument("--ignore", action="append", metavar="PATTERN", help="also leave out files matching PATTERN")
    return parser


# --------------------------------------------------------------------------------------------------------------------
# running a command (torch, diffusers and transformers are imported here, by the command that runs)
# --------------------------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """
    Runs the command of parsed `univigu` arguments (see [`build_parser`]).

    Returns:
        `int`: the exit status (0 success, 1 failed demo check or some captions failed, 2 usage / input error).
    """
    try:
        with quiet_libraries(getattr(args, "quiet", False)):
            from .commands import HANDLERS

            return HANDLERS[args.command](args)
    except CLIError as error:
        print(f"univigu {args.command}: error: {error}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    """
    Entry point of the `univigu` console script; `python -m univigu_hf.cli ...` runs the same command.

    Args:
        argv (`list[str]`, *optional*): the arguments (default: `sys.argv[1:]`).

    Returns:
        `int`: the exit status (0 success, 1 failed demo check or some captions failed, 2 usage / input error, 130
        interrupted by Ctrl-C).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv and not argv[0].startswith("-") else None
    try:
        if command == "convert":
            from .convert import main as convert_main

            return convert_main(argv[1:], prog="univigu convert")
        parser = build_parser()
        args = parser.parse_args(
            argv
        )  # --help, --version and argument errors exit here (SystemExit), as argparse does
        if args.command is None:
            parser.print_help()
            return 0
        return run(args)
    except KeyboardInterrupt:
        # Ctrl-C: one line and the shell's status for SIGINT (128 + 2), not a traceback; files being written are
        # left as they were (every output is written atomically).
        print(f"univigu{' ' + command if command else ''}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
