"""Every user error of the `univigu` command is one line on stderr and exit status 2, before any model runs; and
`--help`, `--version` and argument errors never import torch (they answer at once)."""

import subprocess
import sys

import pytest

from univigu_hf.cli import main
from univigu_hf.testing import build_tiny_pipelines


HUGE = "9" * 30
COMMON = {
    "--steps": ["x", "0", "-1", "2.5", "1001", "nan", HUGE],
    "--seed": ["x", "-1", "nan", "1.5", HUGE],
    "--height": ["x", "0", "-16", "nan", "inf", HUGE],
    "--width": ["x", "0", "16.0", HUGE],
    "--num-frames": ["x", "0", "inf", HUGE],
    "--dtype": ["float64", "int8"],
}
VIDEO = {"--guidance-scale": ["x", "nan", "inf", "-inf"], "--fps": ["x", "0", "-8", "nan", "inf", "1e9"]}
TEXT = {"--max-text-length": ["x", "0", "-3", "nan", HUGE]}
CAPTION = {"--video-cache": ["sometimes"], "--video-cache-refresh": ["x", "0", "nan", HUGE]}
DEMO = {"--steps": ["0", "x", HUGE], "--seed": ["-1", "x"], "--text-length": ["0", "nan"], "--vocab-size": ["x", "0"]}
BASE = {
    "generate": ["generate", "--prompt", "a", "--output", "x.mp4"],
    "joint": ["joint", "--prompt", "a", "--output", "x.mp4"],
    "caption": ["caption", "clip.mp4"],
    "demo": ["demo"],
}
SWEEP = (
    [
        ("generate", option, value)
        for options in (COMMON, VIDEO)
        for option, values in options.items()
        for value in values
    ]
    + [
        ("joint", option, value)
        for options in (COMMON, VIDEO, TEXT)
        for option, values in options.items()
        for value in values
    ]
    + [
        ("caption", option, value)
        for options in (COMMON, TEXT, CAPTION)
        for option, values in options.items()
        for value in values
    ]
    + [("demo", option, value) for option, values in DEMO.items() for value in values]
)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("command, option, value", SWEEP)
def test_every_bad_option_value_is_one_line_and_exit_2(command, option, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*BASE[command], option, value])
    assert exit_info.value.code == 2
    assert one_line_error(capsys).startswith(f"univigu {command}: error: argument {option}")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny"
    build_tiny_pipelines()[0].save_pretrained(path)
    return str(path)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--height", "17"], "height must be a positive multiple of 16"),
        (["--height", "4096"], "height must be at most 512 for this transformer"),
        (["--num-frames", "6"], "num_frames must be 4k+1"),
        (["--num-frames", "601"], "num_frames must be at most 129"),
        (["--device", "bogus"], "--device: not a torch device"),
        (["--output", "x.avi"], "--output must end in .mp4 or .gif"),
    ],
)
def test_values_the_model_cannot_take_are_refused_before_it_runs(
    argv, message, tmp_path, model_dir, capsys, monkeypatch
):
    from univigu_hf import UniViGUPipeline

    def never(*args, **kwargs):
        raise AssertionError("the model ran")

    monkeypatch.setattr(UniViGUPipeline, "_denoise", never)
    base = ["generate", "--model", model_dir, "--prompt", "a", "--output", str(tmp_path / "x.mp4"), "--quiet"]
    if "--output" in argv:
        base = base[: base.index("--output")] + base[base.index("--output") + 2 :]
    assert main([*base, *argv]) == 2
    assert message in one_line_error(capsys)


def test_a_caption_longer_than_the_model_was_trained_for_is_refused(tmp_path, model_dir, capsys):
    import numpy as np

    from univigu_hf.pipelines.video_io import write_video

    video = str(tmp_path / "clip.mp4")
    write_video(np.zeros((5, 16, 16, 3), np.float32), video, fps=8)
    assert main(["caption", video, "--model", model_dir, "--max-text-length", "13", "--quiet"]) == 2
    assert "max_text_length must be an integer in [1, 12] (the transformer's max_text_length" in one_line_error(capsys)


def test_help_version_and_argument_errors_do_not_import_torch():
    # The command is a module of the package, whose `__init__` is lazy: nothing heavy is imported before a command runs.
    code = (
        "import sys\n"
        "from univigu_hf.cli import main\n"
        "for argv in (['--version'], ['--help'], ['generate', '--help'], ['generate', '--prompt', 'a', '--steps', 'x']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ('torch', 'diffusers', 'transformers', 'univigu_hf.models', 'univigu_hf.pipelines')\n"
        "print('HEAVY', sorted(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "HEAVY []" in result.stderr
    assert "univigu_hf " in result.stdout and "usage: univigu" in result.stdout


def test_the_console_script_runs_the_package_module():
    # `univigu` is `univigu_hf.cli:main`, the same module `python -m univigu_hf.cli` and `accelerate launch -m` run.
    import importlib.metadata

    (script,) = [
        entry for entry in importlib.metadata.entry_points(group="console_scripts") if entry.name == "univigu"
    ]
    assert script.value == "univigu_hf.cli:main"
    result = subprocess.run(
        [sys.executable, "-m", "univigu_hf.cli", "generate", "--prompt", "a", "--output", "x.mp4", "--steps", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "univigu generate: error: argument --steps: must be an integer in [1, 1000], got 0 (see univigu generate --help)"
    ]
