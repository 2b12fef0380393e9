import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from univigu_hf.cli import main


def test_help_lists_the_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "convert" in out and "demo" in out


def test_console_script_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert "univigu_hf" in capsys.readouterr().out


def test_foundation_demo_runs_all_modes_and_checks_prior_preservation(capsys):
    assert main(["demo", "--foundation", "--steps", "3", "--text-length", "6"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[: out.rindex("}") + 1])
    assert report["prior_preservation_max_abs_diff"] <= 1e-5
    assert len(report["caption_token_ids"].split()) == 6
    assert report["univigu_parameters"] > report["wan_parameters"]


@pytest.mark.parametrize("flag", ["--steps", "--text-length", "--vocab-size"])
def test_demo_rejects_non_positive_sizes(flag, capsys):
    with pytest.raises(SystemExit):
        main(["demo", flag, "0"])
    assert f"argument {flag}: must be an integer in [1, " in capsys.readouterr().err


def test_demo_writes_videos_strips_and_reports(tmp_path, capsys):
    import re

    from diffusers.utils import load_video
    from PIL import Image

    from univigu_hf import shapes
    from univigu_hf.shapes.demo import DEMO_JOINT_PROMPTS, DEMO_PROMPTS

    output_dir = tmp_path / "demo"
    assert main(["demo", "--steps", "2", "--output_dir", str(output_dir), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "%|" not in err  # --quiet
    assert "held-out" in out and "Video -> text" in out and "caption matches its video" in out
    assert sum(prompt in shapes.HELD_OUT_PROMPTS for prompt in DEMO_PROMPTS) >= 2

    report = json.loads((output_dir / "report.json").read_text())
    assert [item["prompt"] for item in report["generate"]] == list(DEMO_PROMPTS)
    assert [item["prompt"] for item in report["joint"]] == list(DEMO_JOINT_PROMPTS)
    assert {item["split"] for item in report["generate"]} >= {"train", "held-out"}
    assert [item["source"] for item in report["caption"]] == ["generated"] * len(DEMO_PROMPTS) + ["sample"]
    assert report["settings"]["num_inference_steps"] == 2 and report["settings"]["seed"] == 0
    assert all(isinstance(item["caption"], str) for item in [*report["caption"], *report["joint"]])
    assert all(set(item["detected"]) == set(item["caption_vs_video"]["matched"]) | set(
        item["caption_vs_video"]["differing"]) for item in report["joint"])  # fmt: skip
    assert report["seconds"]["total"] >= report["seconds"]["generate"] > 0

    for item in [*report["generate"], *report["joint"]]:
        files = item["files"]
        assert len(load_video(str(output_dir / files["mp4"]))) == 9
        assert len(load_video(str(output_dir / files["gif"]))) == 9
        strip = Image.open(output_dir / files["png"])
        assert strip.size == (4 * (9 * 32 + 8), 4 * 32)  # 9 frames, 1-pixel gaps, upscaled 4x
    assert len(list(output_dir.glob("*.mp4"))) == len(list(output_dir.glob("*.gif"))) == 6
    assert len(list(output_dir.glob("*.png"))) == 7  # + the sample video's strip

    markdown = (output_dir / "report.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert len(images) == 7
    assert all((output_dir / image).is_file() for image in images)
    assert "held-out" in markdown and all(prompt in markdown for prompt in DEMO_PROMPTS)


def test_demo_rejects_an_output_dir_that_is_a_file(tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("")
    assert main(["demo", "--output_dir", str(path)]) == 2
    assert "--output_dir exists and is not a folder" in capsys.readouterr().err


def test_convert_subcommand_reports_missing_arguments(capsys):
    with pytest.raises(SystemExit):
        main(["convert"])
    assert "univigu convert" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------------
# generate / caption / joint
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from univigu_hf.testing import build_tiny_pipelines

    path = tmp_path_factory.mktemp("cli") / "tiny-univigu"
    build_tiny_pipelines()[0].save_pretrained(path)
    return str(path)


def run_cli(capsys, *argv, **options):
    """Runs `univigu *argv --option value ...` (`quiet=True` -> `--quiet`); returns `(code, stdout, stderr)`."""
    args = [str(arg) for arg in argv]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_the_generation_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert all(command in out for command in ("generate", "caption", "joint"))


def test_generate_mp4_reads_back_with_the_right_frame_count(tmp_path, tiny_model_dir, capsys):
    from diffusers.utils import load_video

    output = tmp_path / "out.mp4"
    code, out, err = run_cli(
        capsys, "generate", model=tiny_model_dir, prompt="a red circle", output=output, steps=2, seed=0,
        guidance_scale=3.0, height=32, num_frames=5,
    )  # fmt: skip
    assert code == 0, err
    frames = load_video(str(output))
    assert len(frames) == 5 and frames[0].size == (16, 32)
    assert f"to {output}" in out and "seed 0" in out
    assert "100%" in err  # progress bars are on by default


def test_generate_gif_json_and_quiet(tmp_path, tiny_model_dir, capsys):
    from diffusers.utils import load_video

    output = tmp_path / "out.gif"
    code, out, err = run_cli(
        capsys, "generate", model=tiny_model_dir, prompt="a blue square", output=output, steps=2, seed=3, fps=8,
        json=True, quiet=True,
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["task"] == "generate" and report["output"] == str(output) and report["text"] is None
    assert report["fps"] == 8 and report["num_frames"] == 5 and report["seed"] == 3 and report["seconds"] >= 0
    assert len(load_video(str(output))) == 5
    assert "%|" not in err  # --quiet: no progress bars


def test_caption_json_of_a_generated_video_matches_the_pipeline(tmp_path, tiny_model_dir, capsys):
    from univigu_hf import UniViGUPipeline

    output = tmp_path / "clip.mp4"
    assert run_cli(capsys, "generate", model=tiny_model_dir, prompt="a", output=output, steps=1, quiet=True)[0] == 0
    options = dict(model=tiny_model_dir, steps=3, seed=5, max_text_length=4, quiet=True)
    code, out, err = run_cli(capsys, "caption", output, json=True, **options)
    assert code == 0, err
    report = json.loads(out)
    assert report["task"] == "caption" and report["videos"] == [str(output)] and len(report["text"]) == 1
    assert 1 <= len(report["text"][0].split()) <= 4
    pipe = UniViGUPipeline.from_pretrained(tiny_model_dir)
    pipe.set_progress_bar_config(disable=True)
    generator = [torch.Generator().manual_seed(5)]
    assert (
        report["text"] == pipe.caption(str(output), num_inference_steps=3, max_text_length=4, generator=generator).text
    )

    # Several videos (and a prompt): one "path: caption" line each; a video's caption does not depend on the others.
    code, out, err = run_cli(capsys, "caption", output, output, prompt="a red circle", **options)
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 2 and lines[0] == lines[1] and lines[0].startswith(f"{output}: ")


def test_joint_prints_the_caption_and_writes_the_video(tmp_path, tiny_model_dir, capsys):
    from diffusers.utils import load_video

    output = tmp_path / "joint.mp4"
    options = dict(model=tiny_model_dir, prompt="a red circle", output=output, steps=2, seed=1, max_text_length=5)
    code, out, err = run_cli(capsys, "joint", quiet=True, **options)
    assert code == 0, err
    caption, saved = out.strip().splitlines()
    assert 1 <= len(caption.split()) <= 5 and str(output) in saved
    assert len(load_video(str(output))) == 5
    code, out, _ = run_cli(capsys, "joint", quiet=True, json=True, **options)
    report = json.loads(out)
    assert code == 0 and report["task"] == "joint" and report["text"] == caption and report["output"] == str(output)


def test_errors_are_one_line_with_exit_code_2(tmp_path, tiny_model_dir, capsys):
    unreadable = tmp_path / "broken.mp4"
    unreadable.write_text("not a video")
    generate = dict(prompt="a", output=tmp_path / "o.mp4", model=tiny_model_dir)
    cases = [
        (["caption", tmp_path / "missing.mp4"], dict(model=tiny_model_dir), "video file not found"),
        (["caption", unreadable], dict(model=tiny_model_dir), "could not read"),
        (["generate"], {**generate, "model": tmp_path / "nope"}, "model folder not found"),
        (["generate"], {**generate, "model": tmp_path}, "no model_index.json"),
        (["generate"], {**generate, "model": "org/not-in-the-cache"}, "could not load the model"),
        (["generate"], {**generate, "output": tmp_path / "o.avi"}, "--output must end in .mp4 or .gif"),
        (["joint"], {**generate, "output": tmp_path / "o.webm"}, "--output must end in .mp4 or .gif"),
        (["generate"], {**generate, "height": 20}, "height must be a positive multiple of 16"),
        (["generate"], {**generate, "device": "gpu!"}, "--device"),
    ]
    for argv, options, message in cases:
        code, out, err = run_cli(capsys, *argv, quiet=True, **options)
        assert code == 2, (argv, out, err)
        assert message in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o.mp4").exists()


def test_bad_extension_and_missing_video_fail_before_loading_the_model(tmp_path, capsys, monkeypatch):
    from univigu_hf import UniViGUPipeline

    def fail(*args, **kwargs):
        raise AssertionError("the model must not be loaded")

    monkeypatch.setattr(UniViGUPipeline, "from_pretrained", fail)
    code, _, err = run_cli(capsys, "generate", prompt="a", output=tmp_path / "o.png", model="x/y")
    assert code == 2 and "--output must end in .mp4 or .gif" in err
    code, _, err = run_cli(capsys, "caption", tmp_path / "missing.mp4", model="x/y")
    assert code == 2 and "video file not found" in err


def test_model_defaults_to_univigu_hf_default_model(tmp_path, tiny_model_dir, capsys, monkeypatch):
    import univigu_hf

    monkeypatch.delattr(univigu_hf, "DEFAULT_MODEL", raising=False)
    code, _, err = run_cli(capsys, "generate", prompt="a", output=tmp_path / "o.mp4")
    assert code == 2 and "pass --model" in err
    monkeypatch.setattr(univigu_hf, "DEFAULT_MODEL", tiny_model_dir, raising=False)
    code, _, err = run_cli(capsys, "generate", prompt="a", output=tmp_path / "o.mp4", steps=1, quiet=True)
    assert code == 0, err
    assert (tmp_path / "o.mp4").exists()


def test_caption_video_cache_options(tmp_path, tiny_model_dir, capsys):
    from diffusers.utils import export_to_video

    video = export_to_video(list(np.random.default_rng(0).random((5, 16, 16, 3))), str(tmp_path / "v.mp4"), fps=8)
    options = dict(model=tiny_model_dir, steps=3, seed=0, quiet=True)
    code, _, err = run_cli(capsys, "caption", video, video_cache="exact", **options)
    assert code == 2 and "video_cache='exact' needs a transformer with video_attends_text=False" in err
    code, approx, err = run_cli(capsys, "caption", video, video_cache="approx", video_cache_refresh=1, **options)
    assert code == 0, err
    assert approx == run_cli(capsys, "caption", video, **options)[1]  # refreshed at every step: the uncached loop
    with pytest.raises(SystemExit):  # argparse; the sweep in test_cli_errors.py covers every option
        run_cli(capsys, "caption", video, video_cache="approx", video_cache_refresh=0, **options)
    assert "argument --video-cache-refresh: must be an integer in [1, " in capsys.readouterr().err


def test_caption_splits_videos_between_accelerate_processes(tmp_path, tiny_model_dir, capsys):
    from diffusers.utils import export_to_video

    root = Path(__file__).resolve().parents[1]
    rng = np.random.default_rng(1)
    videos = [export_to_video(list(rng.random((5, 16, 16, 3))), str(tmp_path / f"v{i}.mp4"), fps=8) for i in range(3)]
    options = dict(model=tiny_model_dir, steps=2, seed=7, quiet=True, json=True)
    code, out, err = run_cli(capsys, "caption", *videos, **options)
    assert code == 0, err
    alone = json.loads(out)

    with socket.socket() as probe:  # a free port for the processes' rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root / "src")}
    config = root / "examples" / "accelerate_configs" / "cpu_2proc.yaml"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config)]
    command += ["--main_process_port", str(port), "-m", "univigu_hf.cli", "caption", *videos]
    command += ["--model", tiny_model_dir, "--steps", "2", "--seed", "7", "--quiet", "--json"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1  # the main process reports for all
    assert reports[0]["num_processes"] == 2
    assert reports[0]["videos"] == videos and reports[0]["text"] == alone["text"]
