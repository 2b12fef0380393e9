import json
import os

import numpy as np
import pytest

from univigu_hf import shapes


def test_prompt_space_and_held_out_set():
    assert len(shapes.ALL_PROMPTS) == 96 == len(set(shapes.ALL_PROMPTS))
    held_out = set(shapes.HELD_OUT_PROMPTS)
    assert len(held_out) >= 12 and held_out <= set(shapes.ALL_PROMPTS)
    assert not held_out & set(shapes.TRAIN_PROMPTS)
    assert len(shapes.TRAIN_PROMPTS) + len(held_out) == 96
    # Compositional: every word of a held-out prompt is seen in training, only the combination is new.
    train_words = {word for prompt in shapes.TRAIN_PROMPTS for word in prompt.split()}
    assert all(set(prompt.split()) <= train_words for prompt in held_out)
    # Every (shape, color) pair has exactly one held-out combination.
    pairs = [shapes.parse_prompt(p)[1:3] for p in held_out]
    assert len(set(pairs)) == len(pairs) == 12


def test_prompt_format_is_exact():
    for prompt in shapes.ALL_PROMPTS:
        size, color, shape, direction = shapes.parse_prompt(prompt)
        assert prompt == f"a {size} {color} {shape} moving {direction}"
    with pytest.raises(ValueError, match="prompt must be 'a \\{size\\} \\{color\\}"):
        shapes.parse_prompt("a huge red circle moving left")


def test_world_is_deterministic_per_seed():
    a = list(shapes.generate_clips(5, seed=3))
    b = list(shapes.generate_clips(5, seed=3))
    c = list(shapes.generate_clips(5, seed=4))
    for x, y in zip(a, b):
        assert np.array_equal(x.frames, y.frames) and x.caption == y.caption and x.attributes == y.attributes
    assert any(not np.array_equal(x.frames, z.frames) for x, z in zip(a, c))
    # Clip i depends only on (seed, i): a longer run starts with the same clips.
    longer = list(shapes.generate_clips(7, seed=3))
    assert all(np.array_equal(x.frames, y.frames) for x, y in zip(a, longer))


def test_clips_match_their_attributes():
    for clip in shapes.generate_clips(60, seed=1, split="all"):
        frames, attributes = clip.frames, clip.attributes
        assert frames.shape == (9, 32, 32, 3) and frames.dtype == np.float32
        assert 0 <= frames.min() and frames.max() <= 1
        background = np.array(shapes.BACKGROUND_VALUES[attributes.background])
        assert np.allclose(frames[:, 0, 0], background)  # corners are background
        foreground = np.abs(frames - background).sum(-1) > 0.3
        assert foreground.any(axis=(1, 2)).all()  # the shape is in every frame ...
        assert not foreground[:, [0, -1], :].any() and not foreground[:, :, [0, -1]].any()  # ... and never clipped
        ys, xs = np.nonzero(foreground[0])
        first = np.array([ys.mean(), xs.mean()])
        ys, xs = np.nonzero(foreground[-1])
        moved = np.array([ys.mean(), xs.mean()]) - first
        expected = np.array(shapes.DIRECTION_VECTORS[attributes.direction])
        assert moved @ expected > 0.8 * np.linalg.norm(moved)  # along the named direction
        color = frames[0][foreground[0]].mean(axis=0)
        names = list(shapes.PALETTE)
        nearest = names[int(np.argmin([np.abs(color - np.array(shapes.PALETTE[n])).sum() for n in names]))]
        assert nearest == attributes.color


def test_captions_contain_the_prompt_words_and_details():
    templates_seen = set()
    for clip in shapes.generate_clips(40, seed=2):
        words = clip.caption.replace(",", "").split()
        assert set(clip.prompt.split()) <= set(words)
        a = clip.attributes
        assert f"moving {a.direction}" in clip.caption
        assert a.background in words and a.speed in words and f"the {a.start}" in clip.caption
        templates_seen.add(next(i for i in range(3) if clip.caption == a.caption(i)))
    assert templates_seen == {0, 1, 2}


def test_splits_respect_the_held_out_prompts():
    held_out = set(shapes.HELD_OUT_PROMPTS)
    assert all(clip.prompt not in held_out for clip in shapes.generate_clips(100, seed=0, split="train"))
    assert all(clip.prompt in held_out for clip in shapes.generate_clips(30, seed=0, split="held_out"))


def test_start_positions_keep_the_shape_inside():
    for direction in shapes.DIRECTIONS:
        starts = shapes.valid_starts(direction)
        assert len(starts) == 6 and set(starts) <= set(shapes.START_POSITIONS)
    assert "left" not in shapes.valid_starts("left") and "right" in shapes.valid_starts("left")


def test_datasets_dataset_and_folder_export(tmp_path):
    dataset = shapes.shapes_dataset(6, seed=5)
    assert len(dataset) == 6
    assert {
        "video",
        "prompt",
        "caption",
        "shape",
        "color",
        "size",
        "direction",
        "background",
        "speed",
        "start",
    } <= set(dataset.column_names)
    first = next(shapes.generate_clips(1, seed=5))
    video = np.asarray(dataset[0]["video"], dtype=np.uint8)
    assert video.shape == (9, 32, 32, 3)
    assert np.abs(video / 255.0 - first.frames).max() <= 0.5 / 255 + 1e-6
    assert dataset[0]["caption"] == first.caption

    folder = shapes.export_folder(tmp_path / "world", 4, seed=5)
    rows = [json.loads(line) for line in open(os.path.join(folder, "metadata.jsonl"), encoding="utf-8")]
    assert [row["caption"] for row in rows] == [c.caption for c in shapes.generate_clips(4, seed=5)]
    assert all(os.path.isfile(os.path.join(folder, row["file_name"])) for row in rows)
    from univigu_hf.training import load_video_dataset

    loaded, base_dir = load_video_dataset(folder, stage="refine")  # what the training scripts read
    assert len(loaded) == 4 and base_dir == folder


def test_folder_export_writes_every_clip_as_a_serial_export_would(tmp_path):
    from diffusers.utils import export_to_video

    folder = shapes.export_folder(tmp_path / "world", 12, seed=3, split="held_out")  # more clips than write threads
    rows = [json.loads(line) for line in open(os.path.join(folder, "metadata.jsonl"), encoding="utf-8")]
    clips = list(shapes.generate_clips(12, seed=3, split="held_out"))
    assert [row["file_name"] for row in rows] == [f"held_out_3_{index:05d}.mp4" for index in range(12)]
    for row, clip in zip(rows, clips):
        assert row["prompt"] == clip.prompt
        reference = str(tmp_path / "reference.mp4")
        export_to_video(list(clip.frames), reference, fps=8, macro_block_size=1)
        with open(os.path.join(folder, row["file_name"]), "rb") as written, open(reference, "rb") as expected:
            assert written.read() == expected.read(), row["file_name"]


def test_world_text_covers_every_caption():
    texts = set(shapes.world_text())
    for clip in shapes.generate_clips(30, seed=9, split="all"):
        assert clip.caption in texts and clip.prompt in texts


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(num_clips=2, split="test"), "split must be one of"),
        (dict(num_clips=-1), "num_clips must be a non-negative integer"),
        (dict(num_clips=1, num_frames=8), "num_frames must be 4k\\+1 and at least 9"),
        (dict(num_clips=1, size=16), "size must be at least 32"),
    ],
)
def test_bad_world_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        shapes.generate_clips(**kwargs)  # checked at the call, not at the first clip
    with pytest.raises(ValueError, match=message):
        shapes.shapes_dataset(**kwargs)  # not hidden in a DatasetGenerationError


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("shape", "hexagon", "shape must be one of \\('circle', 'square', 'triangle'\\), got 'hexagon'"),
        ("color", "purple", "color must be one of"),
        ("start", "middle", "start must be one of"),
    ],
)
def test_attributes_are_validated(field, value, message):
    good = dict(shape="circle", color="red", size="small", direction="left", background="black", speed="slowly")
    with pytest.raises(ValueError, match=message):
        shapes.ShapeAttributes(**{**good, "start": "center", field: value})
    with pytest.raises(ValueError, match="template must be an integer in \\[0, 2\\]"):
        shapes.ShapeAttributes(**good, start="center").caption(3)
    # Any start is a valid description (a generated caption may say it), but not one the renderer can keep in frame.
    leaving = shapes.ShapeAttributes(**good, start="left")
    with pytest.raises(ValueError, match="attributes.start must keep a shape moving left inside the frame"):
        shapes.render(leaving, np.random.default_rng(0))
