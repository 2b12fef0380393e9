"""transformers `pipeline()` tasks: "video-to-text", "text-to-video" and "text-to-video-text"."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import datasets
import numpy as np
import PIL.Image
import pytest
import torch
from diffusers.utils import export_to_video
from transformers import pipeline
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.pt_utils import KeyDataset

from univigu_hf import TextToVideoPipeline, TextToVideoTextPipeline, UniViGUPipeline, VideoToTextPipeline
from univigu_hf.testing import TINY_VIDEO, build_tiny_pipelines


TASKS = {
    "video-to-text": VideoToTextPipeline,
    "text-to-video": TextToVideoPipeline,
    "text-to-video-text": TextToVideoTextPipeline,
}
FRAMES = (TINY_VIDEO["num_frames"], TINY_VIDEO["height"], TINY_VIDEO["width"], 3)


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def random_video(seed=0, frames=5, size=16):
    return np.random.default_rng(seed).random((frames, size, size, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def saved_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("pipelines") / "tiny-univigu"
    build_tiny_pipelines()[0].save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def direct(saved_dir):
    """The diffusers pipeline loaded from the same folder, to compare against."""
    pipe = UniViGUPipeline.from_pretrained(saved_dir)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load(task, model, **kwargs):
    pipe = pipeline(task, model=model, device="cpu", **kwargs)
    pipe.univigu_pipeline.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def captioner(saved_dir):
    return load("video-to-text", saved_dir)


@pytest.fixture(scope="module")
def generator_pipe(saved_dir):
    return load("text-to-video", saved_dir)


@pytest.fixture(scope="module")
def joint_pipe(saved_dir):
    return load("text-to-video-text", saved_dir)


def test_tasks_are_registered_at_import():
    supported = PIPELINE_REGISTRY.get_supported_tasks()
    for task, cls in TASKS.items():
        assert task in supported
        assert PIPELINE_REGISTRY.supported_tasks[task]["impl"] is cls


def test_pipeline_wraps_the_loaded_model(captioner):
    univigu = captioner.univigu_pipeline
    assert isinstance(univigu, UniViGUPipeline)
    assert univigu.transformer is captioner.model  # loaded once, by AutoModel
    assert captioner.tokenizer is univigu.tokenizer
    assert univigu.vae.device == captioner.device == torch.device("cpu")


# ---------------------------------------------------------------------------------------------------------------------
# video-to-text
# ---------------------------------------------------------------------------------------------------------------------
def test_caption_single_video_in_every_layout(tmp_path, captioner, direct):
    video = random_video()
    path = export_to_video(list(video), str(tmp_path / "clip.mp4"), fps=8)
    pil = [PIL.Image.fromarray((frame * 255).astype(np.uint8)) for frame in video]
    layouts = [path, pil, video, (video * 255).astype(np.uint8), torch.from_numpy(video).permute(0, 3, 1, 2)]
    for layout in layouts:
        out = captioner(layout, generator=seeded(1))
        assert isinstance(out, list) and len(out) == 1 and set(out[0]) == {"generated_text"}
        expected = direct.caption(layout, generator=seeded(1)).text[0]
        assert out[0]["generated_text"] == expected and expected


def test_caption_batch_is_one_call_with_the_same_generator_semantics(captioner, direct):
    videos = [random_video(0), random_video(1), random_video(2)]
    out = captioner(videos, generator=seeded(7), num_inference_steps=3)
    expected = direct.caption(videos, generator=seeded(7), num_inference_steps=3).text
    assert [item[0]["generated_text"] for item in out] == expected
    assert all(isinstance(item, list) and len(item) == 1 for item in out)
    # A 5-D array is a batch too.
    stacked = captioner(np.stack(videos), generator=seeded(7), num_inference_steps=3)
    assert [item[0]["generated_text"] for item in stacked] == expected


def test_caption_batch_size_with_generator_lists_is_batch_independent(captioner):
    videos = [random_video(0), random_video(1), random_video(2)]
    whole = captioner(videos, generator=[seeded(i) for i in range(3)])
    chunked = captioner(videos, batch_size=2, generator=[seeded(i) for i in range(3)])
    alone = [captioner(video, generator=seeded(i))[0] for i, video in enumerate(videos)]
    assert whole == chunked == [[item] for item in alone]


def test_caption_streams_generators_and_datasets(captioner):
    videos = [random_video(0), random_video(1), random_video(2)]
    stream = captioner((video for video in videos), generator=seeded(0), batch_size=2)
    assert not isinstance(stream, list)
    generator = seeded(0)
    expected = [captioner(videos[:2], generator=generator), captioner(videos[2:], generator=generator)]
    assert list(stream) == expected[0] + expected[1]
    # transformers' KeyDataset over a datasets.Dataset streams the same way.
    dataset = datasets.Dataset.from_dict({"video": videos}).with_format("numpy")
    stream = captioner(KeyDataset(dataset, "video"), generator=seeded(0), batch_size=2)
    assert list(stream) == expected[0] + expected[1]


def test_caption_kwargs_pass_through(saved_dir, captioner, direct):
    video = random_video(3)
    for length in (1, 3):
        text = captioner(video, max_text_length=length, generator=seeded(0))[0]["generated_text"]
        assert 1 <= len(text.split()) <= length
    kwargs = dict(prompt="a red circle", num_inference_steps=2, height=32, width=16, num_frames=1)
    assert (
        captioner(video, generator=seeded(2), **kwargs)[0]["generated_text"]
        == direct.caption(video, generator=seeded(2), **kwargs).text[0]
    )
    # Call defaults given at construction, overridden per call.
    short = load("video-to-text", saved_dir, max_text_length=2)
    assert len(short(video, generator=seeded(0))[0]["generated_text"].split()) <= 2
    assert short(video, max_text_length=5, generator=seeded(0)) == captioner(
        video, max_text_length=5, generator=seeded(0)
    )


# ---------------------------------------------------------------------------------------------------------------------
# text-to-video and text-to-video-text
# ---------------------------------------------------------------------------------------------------------------------
def test_text_to_video_output_and_kwargs(generator_pipe, direct):
    kwargs = dict(num_inference_steps=2, guidance_scale=3.0, negative_prompt="gray")
    out = generator_pipe("a red circle", generator=seeded(0), **kwargs)
    assert set(out) == {"video", "fps"} and out["fps"] == direct.config.default_fps
    assert out["video"].shape == FRAMES and out["video"].dtype == np.float32
    assert 0.0 <= out["video"].min() and out["video"].max() <= 1.0
    expected = direct.generate_video("a red circle", generator=seeded(0), **kwargs).frames[0]
    np.testing.assert_array_equal(out["video"], expected)

    batch = generator_pipe(["a red circle", "a blue square"], num_inference_steps=2, fps=8, generator=seeded(1))
    assert isinstance(batch, list) and [item["fps"] for item in batch] == [8, 8]
    expected = direct.generate_video(["a red circle", "a blue square"], num_inference_steps=2, generator=seeded(1))
    np.testing.assert_array_equal(np.stack([item["video"] for item in batch]), expected.frames)


def test_text_to_video_output_types_and_videos_per_prompt(generator_pipe):
    pil = generator_pipe("a", num_inference_steps=1, output_type="pil")["video"]
    assert len(pil) == FRAMES[0] and isinstance(pil[0], PIL.Image.Image)
    pt = generator_pipe("a", num_inference_steps=1, output_type="pt")["video"]
    assert isinstance(pt, torch.Tensor) and pt.shape == (FRAMES[0], 3, *FRAMES[1:3])
    several = generator_pipe(["a", "b"], num_inference_steps=1, num_videos_per_prompt=2, height=32)
    assert len(several) == 2 and several[0]["video"].shape == (2, FRAMES[0], 32, 16, 3)


def test_joint_output_and_kwargs(joint_pipe, direct):
    kwargs = dict(num_inference_steps=2, max_text_length=4)
    out = joint_pipe("a red circle", generator=seeded(0), **kwargs)
    assert set(out) == {"video", "fps", "generated_text"}
    assert out["video"].shape == FRAMES
    expected = direct.generate_joint("a red circle", generator=seeded(0), **kwargs)
    np.testing.assert_array_equal(out["video"], expected.frames[0])
    assert out["generated_text"] == expected.text[0] and 1 <= len(out["generated_text"].split()) <= 4

    batch = joint_pipe(["a", "b"], generator=[seeded(0), seeded(1)], batch_size=1, **kwargs)
    expected = direct.generate_joint(["a", "b"], generator=[seeded(0), seeded(1)], **kwargs)
    assert [item["generated_text"] for item in batch] == expected.text


# ---------------------------------------------------------------------------------------------------------------------
# Construction, saving, dtype and errors
# ---------------------------------------------------------------------------------------------------------------------
def test_prebuilt_univigu_pipeline_and_save_pretrained(tmp_path, direct):
    unified = build_tiny_pipelines()[0]
    captioner = pipeline("video-to-text", model=unified.transformer, univigu_pipeline=unified, device="cpu")
    video = random_video(4)
    expected = unified.caption(video, generator=seeded(0)).text[0]
    assert captioner(video, generator=seeded(0)) == [{"generated_text": expected}]
    captioner.save_pretrained(tmp_path / "saved")
    reloaded = load("video-to-text", str(tmp_path / "saved"))
    assert reloaded(video, generator=seeded(0)) == [{"generated_text": expected}]
    with pytest.raises(ValueError, match="name_or_path"):
        pipeline("video-to-text", model=build_tiny_pipelines()[0].transformer, device="cpu")


def test_dtype_reaches_every_component(saved_dir):
    pipe = load("text-to-video-text", saved_dir, dtype=torch.bfloat16)
    univigu = pipe.univigu_pipeline
    assert pipe.model.dtype == univigu.vae.dtype == univigu.text_encoder.dtype == torch.bfloat16
    out = pipe("a red circle", num_inference_steps=1)
    assert out["video"].shape == FRAMES and isinstance(out["generated_text"], str)


@pytest.mark.parametrize(
    "task,inputs,kwargs,error,message",
    [
        ("video-to-text", 42, {}, TypeError, "inputs must be a video"),
        ("video-to-text", [], {}, ValueError, "must not be an empty list"),
        ("video-to-text", np.zeros((16, 16, 3), np.float32), {}, ValueError, "shape"),
        ("video-to-text", "missing.mp4", {}, FileNotFoundError, "missing.mp4"),
        ("video-to-text", random_video(), {"max_new_tokens": 3}, TypeError, "max_new_tokens"),
        ("video-to-text", random_video(), {"max_text_length": 0}, ValueError, "max_text_length"),
        ("video-to-text", [random_video(), random_video()], {"generator": [seeded()]}, ValueError, "generator"),
        ("video-to-text", random_video(), {"batch_size": 0}, ValueError, "batch_size"),
        ("text-to-video", 42, {}, TypeError, r"inputs \(the prompt\)"),
        ("text-to-video", ["a", 1], {}, TypeError, r"inputs \(the prompt\)"),
        ("text-to-video", "a", {"output_type": "gif"}, ValueError, "output_type"),
        ("text-to-video", "a", {"fps": 0}, ValueError, "fps"),
        ("text-to-video", ["a", "b"], {"negative_prompt": ["x"] * 3}, ValueError, "negative_prompt"),
        ("text-to-video-text", [], {}, ValueError, "must not be an empty list"),
        ("text-to-video-text", "a", {"use_text_stream": False}, TypeError, "use_text_stream"),
    ],
)
def test_bad_input_is_a_clear_error(captioner, generator_pipe, joint_pipe, task, inputs, kwargs, error, message):
    pipe = {"video-to-text": captioner, "text-to-video": generator_pipe, "text-to-video-text": joint_pipe}[task]
    with pytest.raises(error, match=message):
        pipe(inputs, num_inference_steps=1, **kwargs)


def test_tokenizer_by_name_is_rejected(saved_dir):
    with pytest.raises(TypeError, match="tokenizer must be a loaded tokenizer"):
        pipeline("video-to-text", model=saved_dir, tokenizer=os.path.join(saved_dir, "tokenizer"), device="cpu")


def test_all_tasks_by_repo_id_from_an_offline_hub_cache(tmp_path, saved_dir):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / "models--org--tiny-univigu"
    shutil.copytree(saved_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    script = textwrap.dedent(
        """
        import json
        import numpy as np
        import torch
        import univigu_hf  # registers the tasks
        from transformers import pipeline

        results = {}
        captioner = pipeline("video-to-text", model="org/tiny-univigu", device="cpu")
        video = np.random.default_rng(0).random((5, 16, 16, 3), dtype=np.float32)
        results["caption"] = captioner(video, num_inference_steps=2)
        results["captions"] = captioner([video, video], num_inference_steps=2)
        t2v = pipeline("text-to-video", model="org/tiny-univigu", device="cpu")
        out = t2v("a red circle", num_inference_steps=2)
        results["t2v"] = [list(out["video"].shape), out["fps"]]
        joint = pipeline("text-to-video-text", model="org/tiny-univigu", device="cpu")
        out = joint("a red circle", num_inference_steps=2, generator=torch.Generator().manual_seed(0))
        results["joint"] = [list(out["video"].shape), out["generated_text"]]
        print("RESULT" + json.dumps(results))
        """
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
    }
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout[result.stdout.index("RESULT") + len("RESULT") :])
    assert len(results["caption"]) == 1 and results["caption"][0]["generated_text"]
    assert len(results["captions"]) == 2 and all(len(item) == 1 for item in results["captions"])
    assert results["t2v"] == [list(FRAMES), 16]
    assert results["joint"][0] == list(FRAMES) and results["joint"][1]
