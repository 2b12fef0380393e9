"""Scoring of the shapes world: detectors, caption parser, scores and the bundled evaluate metrics."""

import importlib
import itertools
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import evaluate
import numpy as np
import PIL.Image
import pytest
import torch

from univigu_hf import shapes
from univigu_hf.shapes import scoring as shapes_scoring
from univigu_hf.shapes.scoring import (
    ATTRIBUTES,
    METRICS,
    PROMPT_ATTRIBUTES,
    UNKNOWN,
    as_attributes,
    attribute_accuracy,
    detect_attributes,
    load_metric,
    measure_clip,
    metric_path,
    parse_caption,
    require_text_similarity,
    score_attributes,
    score_captions,
    score_videos,
    text_similarity,
)


SEEDS = (0, 1, 2, 3)
CLIPS_PER_SEED = 80  # 320 clips over all 96 prompts


@pytest.fixture(scope="module")
def clips():
    return [clip for seed in SEEDS for clip in shapes.generate_clips(CLIPS_PER_SEED, seed=seed, split="all")]


def _accuracy(videos, clips):
    scores = score_videos(videos, [clip.attributes for clip in clips])
    assert scores["num_samples"] == len(clips)
    assert scores["counts"] == dict.fromkeys(ATTRIBUTES, len(clips))
    return scores["accuracy"]


# ----- detectors -------------------------------------------------------------------------------------------------------
def test_detectors_on_ground_truth(clips):
    accuracy = _accuracy([clip.frames for clip in clips], clips)
    print("clean:", accuracy)
    assert set(accuracy) == set(ATTRIBUTES)
    for name, value in accuracy.items():
        assert value >= 0.99, (name, value)


def test_detectors_with_gaussian_noise(clips):
    rng = np.random.default_rng(0)
    noisy = [np.clip(clip.frames + rng.normal(0, 0.05, clip.frames.shape), 0, 1) for clip in clips]
    accuracy = _accuracy(noisy, clips)
    print("noise 0.05:", accuracy)
    for name, value in accuracy.items():
        assert value >= 0.97, (name, value)
    # Unclipped noise (values slightly outside [0, 1]) is accepted too.
    unclipped = [clip.frames + rng.normal(0, 0.05, clip.frames.shape) for clip in clips[:40]]
    assert min(_accuracy(unclipped, clips[:40]).values()) >= 0.95


def test_detectors_after_mp4_round_trip(tmp_path):
    from diffusers.utils import load_video

    # 96 clips; ffmpeg runs once per file, so write and read them from a few threads.
    with ThreadPoolExecutor(max_workers=4) as pool:
        folders = list(
            pool.map(lambda seed: shapes.export_folder(tmp_path / str(seed), 24, seed=seed, split="all"), SEEDS)
        )
        rows = []
        for folder in folders:
            with open(os.path.join(folder, "metadata.jsonl"), encoding="utf-8") as handle:
                rows.extend(dict(json.loads(line), folder=folder) for line in handle)
        # load_video gives a list of PIL images
        videos = list(pool.map(lambda row: load_video(os.path.join(row["folder"], row["file_name"])), rows))
    references = [{name: row[name] for name in ATTRIBUTES} for row in rows]
    scores = score_videos(videos, references)
    print("mp4:", scores["accuracy"])
    assert scores["counts"] == dict.fromkeys(ATTRIBUTES, 96)
    for name, value in scores["accuracy"].items():
        assert value >= 0.95, (name, value)


def test_detectors_survive_a_corrupted_frame(clips):
    rng = np.random.default_rng(1)
    corrupted = []
    for clip in clips[:30]:
        frames = clip.frames.copy()
        frames[4] = rng.random(frames[4].shape)  # one frame of pure noise
        frames[6] = frames[6, 0, 0]  # one frame without the shape
        corrupted.append(frames)
    assert min(_accuracy(corrupted, clips[:30]).values()) >= 0.95


def test_input_formats_agree(clips):
    clip = clips[0]
    expected = clip.attributes.to_dict()
    uint8 = np.round(clip.frames * 255).astype(np.uint8)
    inputs = {
        "float numpy": clip.frames,
        "float64 numpy": clip.frames.astype(np.float64),
        "uint8 numpy": uint8,
        "torch (F, 3, H, W) float": torch.from_numpy(clip.frames).permute(0, 3, 1, 2),
        "torch (F, 3, H, W) uint8": torch.from_numpy(uint8).permute(0, 3, 1, 2),
        "list of PIL images": [PIL.Image.fromarray(frame) for frame in uint8],
        "list of RGBA PIL images": [PIL.Image.fromarray(frame).convert("RGBA") for frame in uint8],
        "list of (H, W, 3) arrays": list(clip.frames),
        "list of (3, H, W) tensors": list(torch.from_numpy(clip.frames).permute(0, 3, 1, 2)),
        "nested lists": clip.frames.tolist(),
    }
    for name, frames in inputs.items():
        assert detect_attributes(frames) == expected, name
    # A batch: (B, F, H, W, 3) array or (B, F, 3, H, W) tensor.
    batch = np.stack([c.frames for c in clips[:4]])
    assert score_videos(batch, [c.prompt for c in clips[:4]])["mean_accuracy"] == 1.0
    assert score_videos(torch.from_numpy(batch).permute(0, 1, 4, 2, 3), [c.prompt for c in clips[:4]])[
        "mean_accuracy"
    ] == pytest.approx(1.0)


def test_larger_clips(clips):
    larger = list(shapes.generate_clips(12, seed=5, split="all", num_frames=13, size=48))
    assert min(_accuracy([clip.frames for clip in larger], larger).values()) == 1.0


def test_no_foreground_and_no_motion(clips):
    gray = np.full((9, 32, 32, 3), 0.5, dtype=np.float32)
    assert detect_attributes(gray) == {"background": "gray", **{k: UNKNOWN for k in ATTRIBUTES if k != "background"}}
    measured = measure_clip(np.zeros((9, 32, 32, 3), dtype=np.float32))
    assert measured["num_valid_frames"] == 0 and measured["color_value"] is None

    clip = clips[0]
    still = np.repeat(clip.frames[:1], 9, axis=0)  # the first frame, 9 times
    detected = detect_attributes(still)
    assert detected["direction"] == UNKNOWN and detected["speed"] == "slowly"
    for name in ("shape", "color", "size", "background", "start"):
        assert detected[name] == getattr(clip.attributes, name)


def test_measure_clip(clips):
    clip = next(c for c in clips if c.attributes.shape == "square" and c.attributes.direction == "right")
    measured = measure_clip(clip.frames)
    assert measured["num_valid_frames"] == 9
    assert measured["fill_ratio"] == pytest.approx(1.0, abs=0.02)
    assert abs(measured["asymmetry"]) < 0.2 and abs(measured["roundness"]) < 0.2
    row, column = measured["displacement"]
    assert abs(row) < 0.01 and column > 0.1
    np.testing.assert_allclose(measured["color_value"], shapes.PALETTE[clip.attributes.color], atol=0.05)


@pytest.mark.parametrize(
    "frames, message",
    [
        ("a video", "frames must be a numpy array"),
        (np.zeros((32, 32, 3)), r"frames must have shape \(F, H, W, 3\)"),
        (np.zeros((9, 32, 32, 4)), r"frames must have shape \(F, H, W, 3\)"),
        (torch.zeros(9, 4, 32, 32), r"frames must have shape \(F, H, W, 3\)"),
        (np.zeros((1, 32, 32, 3)), "frames must hold at least 2 frames"),
        ([], "frames must hold at least 2 frames"),
        (np.zeros((9, 4, 4, 3)), "frames must be at least 8x8 pixels"),
        (np.zeros((9, 32, 32, 3), dtype=np.int16), "integer frames must be uint8"),
        (np.zeros((9, 32, 32, 3), dtype=bool), "frames must be uint8 or floating point"),
        (np.full((9, 32, 32, 3), np.nan), "frames must be finite"),
        (np.full((9, 32, 32, 3), 255.0), r"float frames must be in \[0, 1\]"),
        ([np.zeros((32, 32, 3)), np.zeros((16, 16, 3))], "frames must all have the same shape"),
    ],
)
def test_frames_validation(frames, message):
    with pytest.raises(ValueError, match=message):
        detect_attributes(frames)


# ----- captions ---------------------------------------------------------------------------------------------------------
def test_parse_caption_recovers_every_template_and_combination():
    for values in itertools.product(
        shapes.SHAPES, shapes.COLORS, shapes.SIZES, shapes.DIRECTIONS, shapes.BACKGROUNDS, shapes.SPEEDS
    ):
        for start in shapes.START_POSITIONS:  # every start, also the ones `valid_starts` leaves out
            attributes = shapes.ShapeAttributes(*values, start=start)
            for template in range(len(shapes.CAPTION_TEMPLATES)):
                assert parse_caption(attributes.caption(template)) == attributes.to_dict()


def test_parse_caption_on_world_text_and_prompts():
    prompts = set(shapes.ALL_PROMPTS)
    for text in shapes.world_text():
        parsed = parse_caption(text)
        if text in prompts:
            assert all(parsed[name] is None for name in ATTRIBUTES if name not in PROMPT_ATTRIBUTES)
            assert shapes.PROMPT_TEMPLATE.format(**{k: parsed[k] for k in PROMPT_ATTRIBUTES}) == text
        else:  # a detailed caption: all seven attributes, and they rebuild the text
            attributes = shapes.ShapeAttributes(**parsed)
            assert text in {attributes.caption(t) for t in range(len(shapes.CAPTION_TEMPLATES))}
    for prompt in shapes.ALL_PROMPTS:
        size, color, shape, direction = shapes.parse_prompt(prompt)
        assert parse_caption(prompt) == {
            "shape": shape,
            "color": color,
            "size": size,
            "direction": direction,
            "background": None,
            "speed": None,
            "start": None,
        }


def test_parse_caption_edge_cases():
    # "left"/"right" as a direction (after "moving") and as a start position (after "from the") do not mix.
    parsed = parse_caption("a large blue circle moving right quickly on a gray background, starting from the left")
    assert parsed["direction"] == "right" and parsed["start"] == "left"
    parsed = parse_caption("a small red square starts at the top right of a black frame and keeps moving left slowly")
    assert parsed["start"] == "top right" and parsed["direction"] == "left" and parsed["background"] == "black"
    # Case and whitespace do not matter; conflicting or missing words give None.
    assert parse_caption("A  Small RED\tcircle moving   LEFT")["direction"] == "left"
    assert parse_caption("a red blue circle")["color"] is None
    assert parse_caption("") == dict.fromkeys(ATTRIBUTES)
    assert parse_caption("a reddish squares moving leftwards")["color"] is None  # whole words only
    with pytest.raises(TypeError, match="text must be a str"):
        parse_caption(None)


# ----- scores -----------------------------------------------------------------------------------------------------------
def test_attribute_accuracy():
    references = [
        {"shape": "circle", "color": "red", "size": "small"},
        {"shape": "square", "color": "blue", "size": None},  # size not stated: not scored
    ]
    predictions = [
        {"shape": "circle", "color": "green", "size": "small"},
        {"shape": "square", "color": "blue", "size": "large"},
    ]
    assert attribute_accuracy(predictions, references) == {"shape": 1.0, "color": 0.5, "size": 1.0}
    assert attribute_accuracy(predictions, references, attributes=["color"]) == {"color": 0.5}
    # A missing or "unknown" prediction is wrong.
    assert attribute_accuracy([{}, {"shape": UNKNOWN}], references) == {"shape": 0.0, "color": 0.0, "size": 0.0}
    scores = score_attributes(predictions, references)
    assert scores["counts"] == {"shape": 2, "color": 2, "size": 1}
    assert scores["mean_accuracy"] == pytest.approx(2.5 / 3) and scores["num_samples"] == 2
    assert np.isnan(score_attributes([], [])["mean_accuracy"])

    with pytest.raises(ValueError, match="same length"):
        attribute_accuracy(predictions, references[:1])
    with pytest.raises(ValueError, match="attributes must be a sequence of names"):
        attribute_accuracy(predictions, references, attributes=["colour"])
    with pytest.raises(ValueError, match="attributes must be a sequence of names"):
        attribute_accuracy(predictions, references, attributes="color")
    with pytest.raises(ValueError, match="predictions must be attribute dicts"):
        attribute_accuracy(["a red circle"], references[:1])


def test_as_attributes():
    attributes = shapes.ShapeAttributes("circle", "red", "small", "left", "gray", "slowly", "center")
    assert as_attributes(attributes) == attributes.to_dict()
    assert as_attributes(json.dumps(attributes.to_dict())) == attributes.to_dict()
    assert as_attributes(attributes.caption(1)) == attributes.to_dict()
    assert as_attributes({"color": "red", "prompt": "ignored"}) == {**dict.fromkeys(ATTRIBUTES), "color": "red"}
    with pytest.raises(ValueError, match="reference color must be one of"):
        as_attributes({"color": "purple"})
    with pytest.raises(ValueError, match="states none of the attributes"):
        as_attributes({"colour": "red"})
    with pytest.raises(ValueError, match="looks like JSON"):
        as_attributes("{not json")
    with pytest.raises(ValueError, match="a reference must be"):
        as_attributes(3)


def test_score_captions_and_videos(clips):
    sample = clips[:12]
    truth = [clip.attributes for clip in sample]
    perfect = score_captions([clip.caption for clip in sample], truth)
    assert perfect["accuracy"] == dict.fromkeys(ATTRIBUTES, 1.0) and perfect["mean_accuracy"] == 1.0
    # Prompts as captions state only 4 attributes: the other 3 count as wrong against full references ...
    prompts = score_captions([clip.prompt for clip in sample], truth)
    assert all(prompts["accuracy"][name] == (1.0 if name in PROMPT_ATTRIBUTES else 0.0) for name in ATTRIBUTES)
    # ... and prompts as references score only those 4.
    against_prompts = score_captions([clip.caption for clip in sample], [clip.prompt for clip in sample])
    assert set(against_prompts["accuracy"]) == set(PROMPT_ATTRIBUTES)
    assert against_prompts["counts"] == dict.fromkeys(PROMPT_ATTRIBUTES, 12)

    videos = score_videos([clip.frames for clip in sample], [clip.prompt for clip in sample])
    assert videos["accuracy"] == dict.fromkeys(PROMPT_ATTRIBUTES, 1.0)
    videos = score_videos([clip.frames for clip in sample], [json.dumps(a.to_dict()) for a in truth], ["shape"])
    assert videos["accuracy"] == {"shape": 1.0}
    with pytest.raises(ValueError, match="videos and attributes_or_prompts must have the same length"):
        score_videos([clip.frames for clip in sample], truth[:3])
    with pytest.raises(ValueError, match="captions and references must be sequences"):
        score_captions("a caption", truth[:1])


# ----- evaluate metrics -------------------------------------------------------------------------------------------------
def test_metric_paths():
    for name in METRICS:
        folder = metric_path(name)
        assert os.path.isfile(os.path.join(folder, f"{name}.py"))
        with open(os.path.join(folder, f"{name}.py"), encoding="utf-8") as handle:
            source = handle.read()
        assert "from univigu_hf.shapes.scoring import" in source
        assert not any(line.startswith("import ") and "," in line for line in source.splitlines())
    with pytest.raises(ValueError, match="name must be one of"):
        metric_path("bleu")


def test_caption_accuracy_metric():
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    metric = evaluate.load(metric_path("shapes_caption_accuracy"))
    attributes = [
        shapes.ShapeAttributes("circle", "red", "small", "left", "gray", "slowly", "center"),
        shapes.ShapeAttributes("square", "blue", "large", "up", "black", "quickly", "bottom left"),
    ]
    captions = [a.caption(i) for i, a in enumerate(attributes)]
    perfect = metric.compute(predictions=captions, references=captions)
    assert perfect == {**{f"{n}_accuracy": 1.0 for n in ATTRIBUTES}, "mean_accuracy": 1.0, "num_samples": 2}
    # A wrong color in one of two captions; references as attribute JSON strings.
    wrong = [captions[0].replace("red", "green"), captions[1]]
    result = metric.compute(predictions=wrong, references=[json.dumps(a.to_dict()) for a in attributes])
    assert result["color_accuracy"] == 0.5 and result["shape_accuracy"] == 1.0
    assert result["mean_accuracy"] == pytest.approx(1 - 0.5 / 7)
    # Attribute dicts / ShapeAttributes through add / add_batch, prompts as references, an attribute subset.
    metric.add(prediction=wrong[0], reference=attributes[0].to_dict())
    metric.add_batch(predictions=wrong[1:], references=attributes[1:])
    assert metric.compute(attributes=["color", "size"]) == {
        "color_accuracy": 0.5,
        "size_accuracy": 1.0,
        "mean_accuracy": 0.75,
        "num_samples": 2,
    }
    result = metric.compute(predictions=wrong, references=[a.prompt for a in attributes])
    assert set(result) == {f"{n}_accuracy" for n in PROMPT_ATTRIBUTES} | {"mean_accuracy", "num_samples"}
    assert (
        load_metric("shapes_caption_accuracy").compute(predictions=captions, references=captions)["mean_accuracy"] == 1
    )


def test_video_accuracy_metric(clips):
    metric = evaluate.load(metric_path("shapes_video_accuracy"))
    sample = clips[:6]
    perfect = metric.compute(predictions=[c.frames for c in sample], references=[c.attributes for c in sample])
    assert perfect == {**{f"{n}_accuracy": 1.0 for n in ATTRIBUTES}, "mean_accuracy": 1.0, "num_samples": 6}
    # Nested lists and uint8 / torch videos; prompts as references score the prompt attributes.
    videos = [sample[0].frames.tolist(), np.round(sample[1].frames * 255).astype(np.uint8)]
    videos.append(torch.from_numpy(sample[2].frames).permute(0, 3, 1, 2))
    result = metric.compute(predictions=videos, references=[c.prompt for c in sample[:3]])
    assert result == {**{f"{n}_accuracy": 1.0 for n in PROMPT_ATTRIBUTES}, "mean_accuracy": 1.0, "num_samples": 3}
    # A video of another color: color accuracy drops by 1/N.
    other = next(c for c in clips if c.attributes.color != sample[0].attributes.color)
    references = [
        dict(c.attributes.to_dict(), color=other.attributes.color) if i == 0 else c.attributes.to_dict()
        for i, c in enumerate(sample[:2])
    ]
    result = metric.compute(predictions=[c.frames for c in sample[:2]], references=references)
    assert result["color_accuracy"] == 0.5 and result["shape_accuracy"] == 1.0
    metric.add(prediction=sample[0].frames, reference=sample[0].prompt)
    assert metric.compute()["num_samples"] == 1
    with pytest.raises(ValueError, match="frames must have shape"):
        metric.compute(predictions=[np.zeros((9, 32, 32))], references=[sample[0].prompt])


def test_caption_text_similarity_metric():
    metric = evaluate.load(metric_path("caption_text_similarity"))
    captions = ["a small red circle moving left slowly on a gray background, starting from the center"] * 2
    identical = metric.compute(predictions=captions, references=captions)
    assert identical["bleu"] == pytest.approx(100.0) and identical["rougeL"] == pytest.approx(1.0)
    different = metric.compute(predictions=["a large blue square moving up", captions[1]], references=captions)
    assert 0 < different["bleu"] < 100 and 0 < different["rougeL"] < 1
    assert text_similarity(captions, captions) == identical
    with pytest.raises(ValueError, match="same length"):
        text_similarity(captions, captions[:1])


def test_text_similarity_needs_the_eval_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sacrebleu", None)  # `import sacrebleu` now raises ImportError
    with pytest.raises(ImportError, match=r"`eval` extra"):
        require_text_similarity()
    with pytest.raises(ImportError, match=r"sacrebleu>=2.4.*`eval` extra"):
        text_similarity(["a"], ["a"])
    with pytest.raises(ImportError, match=r"`eval` extra"):
        load_metric("caption_text_similarity")
    # The module itself imports without them.
    monkeypatch.setitem(sys.modules, "rouge_score", None)
    module = importlib.reload(shapes_scoring)
    assert module.parse_caption("a small red circle moving left")["color"] == "red"
