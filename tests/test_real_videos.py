"""Videos made elsewhere and what goes wrong around them: batches of different lengths, sizes and frame rates,
long clips read frame by frame, and the checks that come before any model runs."""

import json

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers.utils import export_to_video

from univigu_hf import UniViGUPipeline
from univigu_hf.cli import main
from univigu_hf.pipelines import video_io
from univigu_hf.testing import build_tiny_pipelines


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def nine_frame_model(tmp_path_factory):
    """A tiny pipeline whose default clip is 9 frames, so videos of 5, 13 and 21 frames are cut differently."""
    path = tmp_path_factory.mktemp("model") / "tiny"
    build_tiny_pipelines(default_num_frames=9)[0].save_pretrained(path)
    pipe = UniViGUPipeline.from_pretrained(path)
    pipe.set_progress_bar_config(disable=True)
    return str(path), pipe


@pytest.fixture(scope="module")
def mixed_videos(tmp_path_factory):
    """Three files made by other programs' conventions: 13 frames 16x16 at 8 fps, 21 frames 32x48 at 25 fps (mp4),
    and a 5-frame 20x20 gif."""
    folder = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    short = str(folder / "short.mp4")
    export_to_video(list(rng.random((13, 16, 16, 3), dtype=np.float32)), short, fps=8)
    wide = str(folder / "wide.mp4")
    export_to_video(list(rng.random((21, 32, 48, 3), dtype=np.float32)), wide, fps=25)
    gif = str(folder / "tiny.gif")
    frames = [PIL.Image.fromarray((rng.random((20, 20, 3)) * 255).astype(np.uint8)) for _ in range(5)]
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=125, loop=0)
    return [short, wide, gif]


@pytest.fixture
def encoded(monkeypatch):
    """Records every video the VAE encodes, one `(3, frames, H, W)` tensor per video, in call order."""
    seen = []
    original = UniViGUPipeline.encode_video

    def spy(self, video, *args, **kwargs):
        seen.extend(video)
        return original(self, video, *args, **kwargs)

    monkeypatch.setattr(UniViGUPipeline, "encode_video", spy)
    return seen


def _same_videos(first: list, second: list) -> bool:
    """Whether two lists hold the same videos (frames and values), in any order."""
    return len(first) == len(second) and all(
        any(a.shape == b.shape and torch.equal(a, b) for b in second) for a in first
    )


def test_a_caption_does_not_depend_on_the_batch(nine_frame_model, mixed_videos, encoded):
    _, pipe = nine_frame_model
    options = dict(num_inference_steps=3, max_text_length=6)
    alone = [pipe.caption(path, generator=[seeded(7)], **options).text[0] for path in mixed_videos]
    seen_alone = list(encoded)
    encoded.clear()
    together = pipe.caption(mixed_videos, generator=[seeded(7) for _ in mixed_videos], **options).text
    assert together == alone and _same_videos(encoded, seen_alone)
    # Each video keeps its own frames: 9 of the 13- and 21-frame clips, 5 of the gif.
    assert [clip.shape[1] for clip in seen_alone] == [9, 9, 5]


def test_a_caption_does_not_depend_on_the_batch_in_the_transformers_task(nine_frame_model, mixed_videos, encoded):
    from transformers import pipeline

    path, pipe = nine_frame_model
    captioner = pipeline("video-to-text", model=path)
    alone = [
        captioner(video, generator=seeded(7), num_inference_steps=3)[0]["generated_text"] for video in mixed_videos
    ]
    seen_alone = list(encoded)
    encoded.clear()
    together = captioner(mixed_videos, generator=[seeded(7) for _ in mixed_videos], num_inference_steps=3)
    assert [out[0]["generated_text"] for out in together] == alone and _same_videos(encoded, seen_alone)


def test_a_caption_does_not_depend_on_the_batch_in_the_cli(nine_frame_model, mixed_videos, capsys, encoded):
    path, _ = nine_frame_model
    options = ["--model", path, "--steps", "3", "--seed", "7", "--quiet", "--json"]
    alone = []
    for video in mixed_videos:
        assert main(["caption", video, *options]) == 0
        alone += json.loads(capsys.readouterr().out)["text"]
    seen_alone = list(encoded)
    encoded.clear()
    assert main(["caption", *mixed_videos, *options]) == 0
    assert json.loads(capsys.readouterr().out)["text"] == alone and _same_videos(encoded, seen_alone)


def test_preprocess_video_refuses_a_batch_it_cannot_stack(nine_frame_model, mixed_videos):
    _, pipe = nine_frame_model
    with pytest.raises(ValueError, match=r"different frame counts \[5, 9\].*pass num_frames"):
        pipe.preprocess_video(mixed_videos)
    assert pipe.preprocess_video(mixed_videos, num_frames=5).shape == (3, 3, 5, 16, 16)


def test_a_file_is_decoded_frame_by_frame_keeping_only_the_chosen_frames(mixed_videos, monkeypatch):
    short, wide, gif = mixed_videos
    converted = []
    original = torch.from_numpy
    monkeypatch.setattr(video_io.torch, "from_numpy", lambda array: converted.append(array.shape) or original(array))
    clip = video_io.open_video_file(wide)
    assert clip.num_frames == 21 and converted == []  # opening counts, converts nothing
    frames = clip.read([0, 10, 20, 10])
    assert frames.shape == (4, 3, 32, 48) and torch.equal(frames[1], frames[3])
    assert len(converted) == 3  # three distinct frames converted, one at a time
    everything = video_io.load_video_file(wide)
    assert torch.equal(everything[[0, 10, 20]], frames[:3])
    assert video_io.open_video_file(gif).read([4]).shape == (1, 3, 20, 20)


def test_in_memory_videos_convert_only_the_chosen_frames(nine_frame_model):
    _, pipe = nine_frame_model
    video = (np.random.default_rng(1).random((41, 16, 16, 3)) * 255).astype(np.uint8)
    clip = video_io.to_clips(video)[0]
    assert clip.num_frames == 41 and torch.equal(
        clip.read([40])[0], torch.from_numpy(video[40].astype(np.float32) / 255.0).permute(2, 0, 1)
    )
    assert pipe.preprocess_video(video).shape == (1, 3, 9, 16, 16)
