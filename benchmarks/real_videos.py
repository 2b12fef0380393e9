"""Memory of reading real videos, and the start-up time of the `univigu` command.

Peak resident memory (RSS) of captioning, with the embedded default model, the shipped sample clip and 1280x720,
30 fps test-pattern clips (ffmpeg's `testsrc2`) of 10 and 60 seconds, each in a fresh process, side by side with the
ratio to the sample (goal: within 1.5x: the model sees 9 frames of 32x32 whatever the clip). And the wall time of
`univigu --version`, `univigu --help` and an argument error (goal: under a second: the heavy libraries are imported
only by the commands that need them).

    python benchmarks/real_videos.py --output docs/results/real_videos.json
    python benchmarks/real_videos.py --src ../old-checkout --clips 10     # the same measurements on other code
    python benchmarks/real_videos.py --quick
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

from _common import parser
from _report import emit, repository_path

import univigu_hf


GOAL_RSS_RATIO, GOAL_STARTUP_SECONDS = 1.5, 1.0

# Run in a fresh interpreter: caption one file with the default model, print the peak RSS (kB on Linux) and seconds.
CAPTION = """
import resource, sys, time
import univigu_hf
from univigu_hf import UniViGUPipeline
pipe = UniViGUPipeline.from_pretrained(univigu_hf.DEFAULT_MODEL)
pipe.set_progress_bar_config(disable=True)
start = time.perf_counter()
text = pipe.caption(sys.argv[1]).text[0]
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter() - start, text, sep="\\t")
"""


def make_clip(path: str, seconds: float, width: int, height: int, fps: int = 30) -> None:
    """Writes an h264 test-pattern clip with ffmpeg (imageio-ffmpeg's binary)."""
    import imageio_ffmpeg

    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi",
        "-i", f"testsrc2=size={width}x{height}:rate={fps}", "-t", str(seconds),
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", path,
    ]  # fmt: skip
    subprocess.run(command, check=True)


def run(command: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, result


def caption_memory(path: str, env: dict) -> dict:
    seconds, result = run([sys.executable, "-c", CAPTION, path], env)
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["killed"])[-1], "returncode": result.returncode}
    rss_kb, caption_seconds, text = result.stdout.strip().split("\t")
    return {
        "peak_rss_mb": round(int(rss_kb) / 1024, 1),
        "caption_seconds": round(float(caption_seconds), 2),
        "text": text,
    }


def entry_module(env: dict) -> str:
    """The module the `univigu` console script runs in the measured code (`univigu_hf_cli`, or before it existed,
    `univigu_hf.cli`)."""
    probe = "import importlib.util; print(importlib.util.find_spec('univigu_hf_cli') is not None)"
    found = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True).stdout.strip()
    return "univigu_hf_cli" if found == "True" else "univigu_hf.cli"


def startup_seconds(env: dict, repeats: int) -> dict:
    """Median wall time of the three commands that should answer without loading torch, run as the console script
    runs them (`python -m <its module>`)."""
    module = entry_module(env)
    commands = {
        "univigu --version": ["--version"],
        "univigu --help": ["--help"],
        "univigu generate --steps x (argument error)": ["generate", "--prompt", "a", "--steps", "x"],
    }
    out = {}
    for name, argv in commands.items():
        times = [run([sys.executable, "-m", module, *argv], env)[0] for _ in range(repeats)]
        out[name] = round(statistics.median(times), 3)
    out["console script module"] = module
    return out


def main() -> None:
    parser_ = parser(__doc__.split("\n\n")[0])
    parser_.add_argument("--src", help="a checkout whose src/ is measured instead of the installed package")
    parser_.add_argument("--clips", default="10,60", help="clip lengths in seconds, comma-separated")
    args = parser_.parse_args()
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    if args.src:
        env["PYTHONPATH"] = os.path.join(os.path.abspath(args.src), "src")
    width, height = (320, 180) if args.quick else (1280, 720)
    lengths = [2] if args.quick else [float(x) for x in args.clips.split(",")]

    results = {
        "what": "peak RSS of UniViGUPipeline.caption(path) with the default model, fresh process per clip",
        "code": repository_path(args.src if args.src else os.path.dirname(univigu_hf.__file__)),
        "clips": {},
    }
    results["clips"]["shipped sample (9 frames, 32x32)"] = caption_memory(univigu_hf.SAMPLE_VIDEO, env)
    with tempfile.TemporaryDirectory() as folder:
        for seconds in lengths:
            path = os.path.join(folder, f"clip_{seconds:g}s.mp4")
            make_clip(path, seconds, width, height)
            name = f"{seconds:g} s, {width}x{height}, 30 fps ({os.path.getsize(path) // 1024} KB)"
            results["clips"][name] = caption_memory(path, env)
    sample_rss = results["clips"]["shipped sample (9 frames, 32x32)"].get("peak_rss_mb")
    for row in results["clips"].values():
        if "peak_rss_mb" in row and sample_rss:
            row["rss_over_sample"] = round(row["peak_rss_mb"] / sample_rss, 2)
    ratios = [row.get("rss_over_sample") for row in results["clips"].values()]
    results["goal_rss"] = f"every clip within {GOAL_RSS_RATIO}x the sample's peak RSS"
    results["goal_rss_met"] = all(r is not None and r <= GOAL_RSS_RATIO for r in ratios)
    results["startup_seconds"] = startup_seconds(env, 1 if args.quick else 3)
    results["goal_startup"] = f"each under {GOAL_STARTUP_SECONDS} s"
    seconds = [value for value in results["startup_seconds"].values() if isinstance(value, float)]
    results["goal_startup_met"] = all(s < GOAL_STARTUP_SECONDS for s in seconds)
    emit(results, args.output)


if __name__ == "__main__":
    main()
