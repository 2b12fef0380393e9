"""Arguments at the edges of what users pass, outside the videos themselves: each gets a clear error that names it,
before any work is done, never a silent wrong result."""

import math
import shutil
import signal
import subprocess
import sys

import pytest
from transformers import pipeline


@pytest.fixture(scope="module")
def text_to_video(tmp_path_factory):
    from univigu_hf.testing import build_tiny_pipelines

    path = tmp_path_factory.mktemp("edges") / "tiny-univigu"
    build_tiny_pipelines()[0].save_pretrained(path)
    return pipeline("text-to-video", model=str(path), device="cpu")


@pytest.mark.parametrize("fps", [math.nan, math.inf, -1, 0, "8"])
def test_the_text_to_video_task_refuses_a_bad_fps_before_generating(text_to_video, fps, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("generation started before fps was checked")

    monkeypatch.setattr(text_to_video.univigu_pipeline, "generate_video", must_not_run)
    with pytest.raises(ValueError, match=f"fps must be a finite positive number \\(frames per second\\), got {fps!r}"):
        text_to_video("a red circle", num_inference_steps=1, fps=fps)


# ---------------------------------------------------------------------------------------------------------------------
# Loading a damaged pipeline folder: the error names what is missing
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved_pipeline(tmp_path_factory):
    from univigu_hf.testing import build_tiny_pipelines

    path = tmp_path_factory.mktemp("damaged") / "tiny-univigu"
    build_tiny_pipelines()[0].save_pretrained(path)
    return path


def _remove_tokenizer(folder):
    shutil.rmtree(folder / "tokenizer")


def _remove_vae_weights(folder):
    for file in (folder / "vae").glob("*.safetensors"):
        file.unlink()


def _rename_as_variant(folder):
    for file in (folder / "vae").glob("*.safetensors"):
        file.rename(file.with_name(file.name.replace(".safetensors", ".fp16.safetensors")))


def _empty_tokenizer(folder):
    for file in (folder / "tokenizer").iterdir():
        file.unlink()


@pytest.mark.parametrize(
    "damage,message",
    [
        (_remove_tokenizer, "has no tokenizer/ folder, which its model_index.json lists"),
        (_empty_tokenizer, "has none of the tokenizer files"),
        (_remove_vae_weights, "vae folder .* has a config.json but no weights file"),
        (_rename_as_variant, "vae weights .* are saved only as variant\\(s\\) \\['fp16'\\], not the plain file: pass "
         "variant='fp16'"),
    ],
)  # fmt: skip
def test_a_damaged_pipeline_folder_names_what_is_missing(saved_pipeline, tmp_path, damage, message):
    from univigu_hf import UniViGUPipeline

    folder = tmp_path / "copy"
    shutil.copytree(saved_pipeline, folder)
    damage(folder)
    with pytest.raises(ValueError, match=message):
        UniViGUPipeline.from_pretrained(folder)


# ---------------------------------------------------------------------------------------------------------------------
# Signals
# ---------------------------------------------------------------------------------------------------------------------
def test_sigterm_during_a_write_leaves_no_staging_file(tmp_path):
    script = (
        "import sys, time\n"
        "from univigu_hf.utils.saving import atomic_file\n"
        "with atomic_file(sys.argv[1]) as temporary:\n"
        "    open(temporary, 'w').write('half')\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
    )
    target = tmp_path / "out.mp4"
    target.write_text("previous")
    process = subprocess.Popen([sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "writing"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        process.kill()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.mp4"]
    assert target.read_text() == "previous"


# ---------------------------------------------------------------------------------------------------------------------
# The command line: Ctrl-C, and a batch with some unreadable videos
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_dir(saved_pipeline):
    return str(saved_pipeline)


def test_ctrl_c_is_one_line_and_exit_status_130(model_dir, tmp_path, monkeypatch, capsys):
    from univigu_hf import commands
    from univigu_hf.cli import main

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(commands.HANDLERS, "generate", interrupted)
    code = main(["generate", "--model", model_dir, "--prompt", "a", "--output", str(tmp_path / "out.mp4")])
    err = capsys.readouterr().err
    assert code == 130
    assert err.strip() == "univigu generate: interrupted"


def test_caption_keeps_the_readable_videos_and_names_each_failure(model_dir, tmp_path, capsys):
    import json

    import numpy as np

    from univigu_hf.cli import main
    from univigu_hf.pipelines.video_io import write_video

    good = str(tmp_path / "good.mp4")
    write_video(np.random.default_rng(0).random((5, 16, 16, 3)), good, fps=8)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    missing = str(tmp_path / "missing.mp4")
    options = ["--model", model_dir, "--steps", "1", "--seed", "0", "--height", "16", "--width", "16", "--quiet"]
    assert main(["caption", good, *options, "--json"]) == 0
    alone = json.loads(capsys.readouterr().out)["text"][0]

    code = main(["caption", good, str(broken), missing, *options, "--json"])
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert code == 1
    assert report["text"] == [alone, None, None]
    assert sorted(report["errors"]) == sorted([str(broken), missing])
    assert f"could not read {str(broken)!r} as a video" in err and f"video file not found: {missing!r}" in err
    assert len(err.strip().splitlines()) == 2

    assert main(["caption", str(broken), missing, *options]) == 2  # nothing could be read


# ---------------------------------------------------------------------------------------------------------------------
# callback_on_step_end: what a callback returns is checked; `_interrupt` stops every loop
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pipe(saved_pipeline):
    from univigu_hf import UniViGUPipeline

    loaded = UniViGUPipeline.from_pretrained(saved_pipeline)
    loaded.set_progress_bar_config(disable=True)
    return loaded


def _seeded(seed=0):
    import torch

    return torch.Generator().manual_seed(seed)


def _returning(name, make):
    def callback(pipe, step, timestep, tensors):
        return {name: make(tensors[name])}

    return callback


@pytest.mark.parametrize(
    "task,name,make,error,message",
    [
        ("video", "latents", lambda t: t[:, :, :1], ValueError, "returned 'latents' at step 0 with shape"),
        ("video", "latents", lambda t: t.double(), ValueError, "with dtype torch.float64; it must keep the dtype"),
        ("video", "latents", lambda t: t.tolist(), TypeError, "returned 'latents' at step 0 as list"),
        ("video", "latents", lambda t: t * float("nan"), ValueError, "with NaN or inf values"),
        ("joint", "text_ids", lambda t: t[:, :2], ValueError, "returned 'text_ids' at step 0 with shape"),
        ("caption", "text_ids", lambda t: t[:, :2], ValueError, "returned 'text_ids' at step 0 with shape"),
    ],
)
def test_a_callback_cannot_change_the_shape_or_type_of_a_tensor(pipe, task, name, make, error, message):
    import torch

    callback = _returning(name, make)
    kwargs = dict(num_inference_steps=2, generator=_seeded(), callback_on_step_end=callback)
    kwargs["callback_on_step_end_tensor_inputs"] = [name]
    with pytest.raises(error, match=message):
        if task == "video":
            pipe.generate_video("a red circle", **kwargs)
        elif task == "joint":
            pipe.generate_joint("a red circle", **kwargs)
        else:
            pipe.caption(torch.rand(5, 3, 16, 16), **kwargs)


def test_caption_honours_interrupt(pipe):
    import torch

    video = torch.rand(5, 3, 16, 16, generator=_seeded(1))
    steps = []

    def stop(p, step, timestep, tensors):
        steps.append(step)
        p._interrupt = True
        return {"text_ids": torch.full_like(tensors["text_ids"], p.tokenizer.eos_token_id)}

    out = pipe.caption(video, generator=_seeded(), num_inference_steps=4, callback_on_step_end=stop)
    assert steps == [0] and out.text == [""]
    assert pipe.caption(video, generator=_seeded(), num_inference_steps=4).text != [""]


@pytest.mark.parametrize("task", ["video", "joint", "caption"])
def test_max_sequence_length_is_bounded_before_encoding(pipe, task, monkeypatch):
    import torch

    def must_not_run(*args, **kwargs):
        raise AssertionError("the text encoder ran before max_sequence_length was checked")

    monkeypatch.setattr(pipe.text_encoder, "forward", must_not_run)
    message = "max_sequence_length must be at most 512 \\(the tokenizer's model_max_length.*got 100000"
    with pytest.raises(ValueError, match=message):
        if task == "caption":
            pipe.caption(torch.rand(5, 3, 16, 16), prompt="a red circle", max_sequence_length=100000)
        else:
            getattr(pipe, {"video": "generate_video", "joint": "generate_joint"}[task])(
                "a red circle", max_sequence_length=100000
            )


def test_a_cut_prompt_and_unknown_words_are_warned_about(pipe, caplog):
    import logging

    long_prompt = " ".join(["a red circle moving left"] * 40)
    with caplog.at_level(logging.WARNING, logger="univigu_hf"):
        pipe.generate_video([long_prompt, "a zorblax circle"], num_inference_steps=1, generator=_seeded())
    text = caplog.text
    assert "prompt[0] has" in text and "the text stream reads the first" in text
    assert "prompt[1] has 1 token(s) the tokenizer does not know ('zorblax')" in text


def test_damaged_weights_are_named_as_the_cause_of_nan(saved_pipeline, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    from univigu_hf import UniViGUPipeline

    folder = tmp_path / "damaged"
    shutil.copytree(saved_pipeline, folder)
    (weights,) = (folder / "transformer").glob("*.safetensors")
    tensors = load_file(weights)
    name = next(key for key in tensors if key.endswith("to_q.weight"))
    tensors[name][0, 0] = float("nan")  # damaged in place: same names, shapes and size
    save_file(tensors, weights, metadata={"format": "pt"})
    damaged = UniViGUPipeline.from_pretrained(folder)  # loads: the file is well-formed
    with pytest.raises(
        ValueError, match="at denoising step 0 .* The transformer's weights themselves hold NaN or inf"
    ):
        damaged.generate_video("a red circle", num_inference_steps=1, generator=torch.Generator().manual_seed(0))
