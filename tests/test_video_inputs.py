"""Videos as users' readers and writers hand them over: empty clips, frame formats of PIL / imageio / torchvision /
decord, files whose extension does not say what they are, and output files written at the size asked for."""

import subprocess

import numpy as np
import PIL.Image
import PIL.ImageSequence
import pytest
import torch

from univigu_hf.pipelines.video_io import open_video_file, write_video


SIZE = dict(height=16, width=16, num_frames=5)


def preprocess(pipe, video):
    return pipe.preprocess_video(video, **SIZE)


# ---------------------------------------------------------------------------------------------------------------------
# Empty videos
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "video,message",
    [
        (np.zeros((0, 16, 16, 3), np.uint8), "is empty: 0 frames of 16x16 pixels"),
        (np.zeros((5, 0, 16, 3), np.uint8), "is empty: 5 frames of 0x16 pixels"),
        (torch.zeros(0, 3, 16, 16), "is empty: 0 frames of 16x16 pixels"),
        (torch.zeros(5, 3, 16, 0), "is empty: 5 frames of 16x0 pixels"),
        ([PIL.Image.new("RGB", (0, 16))] * 5, "at least 1x1 pixels, got a 0x16 PIL frame"),
    ],
)
def test_an_empty_video_is_refused_by_name(tiny_pipe, video, message):
    with pytest.raises(ValueError, match=message):
        preprocess(tiny_pipe, video)


def test_an_empty_video_in_a_batch_is_refused_by_name(tiny_pipe):
    batch = [np.zeros((5, 16, 16, 3), np.uint8), np.zeros((0, 16, 16, 3), np.uint8)]
    with pytest.raises(ValueError, match="is empty: 0 frames"):
        tiny_pipe.caption(batch, num_inference_steps=1, max_text_length=4, **SIZE)


# ---------------------------------------------------------------------------------------------------------------------
# Frame formats: converted faithfully, or refused by name
# ---------------------------------------------------------------------------------------------------------------------
def test_uint8_tensors_of_torchvision_and_decord_are_read_like_the_same_array(tiny_pipe):
    frames = torch.randint(0, 256, (5, 16, 16, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    expected = preprocess(tiny_pipe, frames.numpy())
    assert torch.equal(preprocess(tiny_pipe, frames), expected)  # (T, H, W, C): read_video, decord
    assert torch.equal(preprocess(tiny_pipe, frames.permute(0, 3, 1, 2)), expected)  # (T, C, H, W): output_format
    assert torch.equal(preprocess(tiny_pipe, frames.permute(0, 3, 1, 2).float() / 255), expected)


def test_sixteen_bit_frames_keep_their_values(tiny_pipe):
    values = np.random.default_rng(0).integers(0, 65536, (5, 16, 16), dtype=np.uint16)
    expected = values.astype(np.float32) / 65535
    grey = np.repeat(expected[..., None], 3, axis=-1)
    from_array = preprocess(tiny_pipe, np.repeat(values[..., None], 3, axis=-1))
    from_pil = preprocess(tiny_pipe, [PIL.Image.fromarray(frame) for frame in values])  # mode I;16
    reference = preprocess(tiny_pipe, grey)
    torch.testing.assert_close(from_array, reference)
    torch.testing.assert_close(from_pil, reference)
    # Not clipped to 8 bits: PIL's convert("RGB") would make every value above 255 white.
    assert from_pil.unique().numel() > 256


def test_pil_modes_are_converted_or_refused_by_name(tiny_pipe):
    rgb = (np.random.default_rng(1).random((5, 16, 16, 3)) * 255).astype(np.uint8)
    expected = preprocess(tiny_pipe, rgb)
    rgba = [PIL.Image.fromarray(np.dstack([frame, np.full((16, 16), 7, np.uint8)]), "RGBA") for frame in rgb]
    assert torch.equal(preprocess(tiny_pipe, rgba), expected)  # the alpha channel is ignored, the colour kept
    grey = [PIL.Image.fromarray(frame[..., 0]) for frame in rgb]  # mode L
    assert torch.equal(preprocess(tiny_pipe, grey), preprocess(tiny_pipe, np.repeat(rgb[..., :1], 3, axis=-1)))
    with pytest.raises(TypeError, match="PIL mode 'I' are not accepted"):
        preprocess(tiny_pipe, [PIL.Image.new("I", (16, 16))] * 5)


@pytest.mark.parametrize(
    "video,error,message",
    [
        (np.zeros((5, 16, 16, 3), np.int32), TypeError, "must be uint8 in \\[0, 255\\], uint16 .* got int32"),
        (np.zeros((5, 16, 16, 3), bool), TypeError, "got bool"),
        (torch.zeros(5, 3, 16, 16, dtype=torch.int16), TypeError, "got int16"),
        (np.zeros((5, 16, 16, 4), np.uint8), ValueError, "drop the alpha channel with video\\[..., :3\\]"),
    ],
)
def test_other_pixel_types_are_refused_by_name(tiny_pipe, video, error, message):
    with pytest.raises(error, match=message):
        preprocess(tiny_pipe, video)


# ---------------------------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture
def clip():
    return np.random.default_rng(2).random((5, 16, 16, 3)).astype(np.float32)


def test_a_file_is_read_by_content_not_by_extension(tmp_path, tiny_pipe, clip):
    mp4 = tmp_path / "clip.mp4"
    write_video(clip, mp4, fps=8)
    bare = tmp_path / "clip"
    bare.write_bytes(mp4.read_bytes())
    assert torch.equal(preprocess(tiny_pipe, str(bare)), preprocess(tiny_pipe, str(mp4)))
    frames = [PIL.Image.fromarray((frame * 255).round().astype(np.uint8)) for frame in clip]
    for name in ("clip.webp", "clip.png"):  # animated WebP and APNG
        frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:], duration=125, loop=0, lossless=True)
        assert open_video_file(str(tmp_path / name)).num_frames == 5
        torch.testing.assert_close(preprocess(tiny_pipe, str(tmp_path / name)), preprocess(tiny_pipe, frames))


@pytest.mark.parametrize(
    "name,error,message",
    [
        ("https://example.com/clip.mp4", ValueError, "is a URL; videos are read from local files"),
        ("frames/img%03d.png", ValueError, "looks like an image-sequence pattern"),
        ("folder", ValueError, "is a folder; pass a video file, or its frames as a list of PIL images"),
        ("missing.mp4", FileNotFoundError, "video file not found"),
    ],
)
def test_what_is_not_a_video_file_is_named(tmp_path, tiny_pipe, name, error, message):
    (tmp_path / "folder").mkdir()
    path = name if "://" in name else str(tmp_path / name)
    with pytest.raises(error, match=message):
        preprocess(tiny_pipe, path)


def test_an_audio_only_file_is_named_and_not_retried(tmp_path, tiny_pipe, caplog):
    import imageio_ffmpeg

    audio = tmp_path / "tone.m4a"
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=0.2"]
    subprocess.run([*command, "-y", str(audio)], check=True)
    with pytest.raises(ValueError, match="has no video stream \\(only audio\\)"):
        preprocess(tiny_pipe, str(audio))
    assert "trying again" not in caplog.text


# ---------------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("height,width", [(24, 24), (40, 56), (18, 10)])
def test_an_mp4_is_written_at_the_size_asked_for(tmp_path, height, width):
    path = tmp_path / "out.mp4"
    write_video(np.random.default_rng(3).random((5, height, width, 3)), path, fps=8)
    written = open_video_file(str(path))
    assert written.num_frames == 5 and written.read([0]).shape[-2:] == (height, width)


def test_an_odd_sized_mp4_is_refused_before_writing(tmp_path):
    path = tmp_path / "out.mp4"
    with pytest.raises(ValueError, match="needs an even width and height, got 24x25 frames"):
        write_video(np.zeros((5, 25, 24, 3)), path, fps=8)
    assert not path.exists()


@pytest.mark.parametrize("fps", [8, 12.5])
def test_a_still_video_saves_as_gif(tmp_path, fps):
    path = tmp_path / "still.gif"
    write_video(np.full((9, 16, 16, 3), 0.5), path, fps=fps)
    with PIL.Image.open(path) as gif:
        durations = [gif.info["duration"] for _ in PIL.ImageSequence.Iterator(gif)]
    # Pillow stores a run of identical frames once with the run's duration: the clip still plays 9 frames long.
    assert abs(sum(durations) - 9 * 1000 / fps) <= 10 * len(durations)


def test_a_bad_video_in_a_batch_is_named_by_its_position(tmp_path, tiny_pipe, clip):
    good = tmp_path / "good.mp4"
    write_video(clip, good, fps=8)
    with pytest.raises(FileNotFoundError, match="video\\[2\\]: video file not found: .*missing.mp4"):
        tiny_pipe.caption([str(good), clip, str(tmp_path / "missing.mp4")], num_inference_steps=1, **SIZE)
    with pytest.raises(TypeError, match="video\\[1\\]: video as a numpy array must be uint8"):
        preprocess(tiny_pipe, [clip, clip.astype(np.int64)])


def test_opening_many_files_shows_progress_unless_disabled(tmp_path, tiny_pipe, clip, capsys):
    from diffusers.utils import logging as diffusers_logging

    paths = []
    for index in range(8):
        paths.append(str(tmp_path / f"clip{index}.gif"))
        write_video(clip, paths[-1], fps=8)
    preprocess(tiny_pipe, paths)
    assert "Opening videos" in capsys.readouterr().err
    diffusers_logging.disable_progress_bar()
    try:
        preprocess(tiny_pipe, paths)
    finally:
        diffusers_logging.enable_progress_bar()
    assert "Opening videos" not in capsys.readouterr().err


def test_a_video_shorter_than_the_default_frame_count_is_warned_about(tiny_pipe, caplog):
    import logging

    frames = np.random.default_rng(4).random((2, 16, 16, 3)).astype(np.float32)
    with caplog.at_level(logging.WARNING, logger="univigu_hf"):
        pixels = tiny_pipe.preprocess_video(frames, height=16, width=16)
    assert pixels.shape[2] == 1
    default = tiny_pipe.config.default_num_frames
    assert f"has 2 frames, so 1 are used: fewer than the {default} this pipeline takes by default" in caplog.text
