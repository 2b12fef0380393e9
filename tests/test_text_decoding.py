"""Confidence-ordered parallel decoding of the text stream (`UniFlowScheduler(text_decoding="confidence")`)."""

import hashlib
import json
import math

import numpy as np
import pytest
import torch

from univigu_hf.schedulers import UniFlowScheduler
from univigu_hf.testing import build_tiny_pipelines


LENGTH = 12  # the tiny pipelines' max_text_length


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def tiny_pipe(source="uniform", **decoding):
    pipe, _ = build_tiny_pipelines()
    config = dict(pipe.scheduler.config)
    if source == "mask":
        decoding.update(text_source="mask", mask_token_id=config["text_vocab_size"] - 1)
    if decoding:
        pipe.scheduler = UniFlowScheduler.from_config(config, **decoding)
    return pipe


def videos(count=2):
    return list(torch.rand(count, 5, 16, 16, 3, generator=seeded(3)).numpy())


class Recorder:
    """Records `text_ids` after every step (callback), the committed masks `step_text` returns, and the number of
    transformer calls (forward hook)."""

    def __init__(self, pipe):
        self.ids, self.masks, self.calls = [], [], 0
        pipe.transformer.register_forward_hook(self._count)
        step_text = pipe.scheduler.step_text

        def spy(*args, **kwargs):
            out = step_text(*args, **kwargs)
            self.masks.append(out.text_committed)
            return out

        pipe.scheduler.step_text = spy

    def full_masks(self, rows):
        """The committed mask of the whole batch after each step (`step_text` runs a row at a time when the pipeline
        draws per video)."""
        if self.masks and self.masks[0].shape[0] == rows:
            return self.masks
        return [torch.cat(self.masks[i : i + rows]) for i in range(0, len(self.masks), rows)]

    def _count(self, *_):
        self.calls += 1

    def callback(self, pipe, step, timestep, tensors):
        self.ids.append(tensors["text_ids"].clone())
        return {}


# ----------------------------------------------------------------------------------------------------------------------
# The default ("euler") is the solver as it was
# ----------------------------------------------------------------------------------------------------------------------

# Token ids after the last step and a digest of the ids after every step, recorded with the solver before
# `text_decoding` existed (commit 3eb115e): caption of two videos (generators 10, 11, 6 steps) and joint generation.
GOLDEN = {
    "uniform": {
        "caption": [[5, 2, 17, 7, 10, 19, 14, 25, 14, 27, 7, 17], [14, 30, 14, 30, 6, 16, 18, 14, 16, 10, 25, 15]],
        "caption_digest": "63b264777610cb82",
        "joint": [[5, 27, 30, 30, 15, 10, 27, 2, 30, 18, 30, 30]],
        "joint_digest": "bdf4a848825ca945",
    },
    "mask": {
        "caption": [[2, 14, 14, 27, 15, 4, 14, 15, 14, 27, 14, 5], [14, 5, 4, 4, 14, 4, 4, 27, 14, 2, 4, 14]],
        "caption_digest": "3525648fc5f29a07",
        "joint": [[30, 2, 27, 14, 27, 14, 14, 14, 14, 14, 14, 27]],
        "joint_digest": "627d708e13ed1c7f",
    },
}


def digest(steps):
    return hashlib.sha256(json.dumps([ids.tolist() for ids in steps]).encode()).hexdigest()[:16]


@pytest.mark.parametrize("source", ["uniform", "mask"])
@pytest.mark.parametrize("explicit", [False, True])
def test_euler_default_is_unchanged(source, explicit):
    pipe = tiny_pipe(source, **({"text_decoding": "euler"} if explicit else {}))
    assert pipe.scheduler.config.text_decoding == "euler"
    record = Recorder(pipe)
    pipe.caption(
        videos(), num_inference_steps=6, generator=[seeded(10), seeded(11)], callback_on_step_end=record.callback
    )
    assert record.ids[-1].tolist() == GOLDEN[source]["caption"]
    assert digest(record.ids) == GOLDEN[source]["caption_digest"]
    assert record.calls == 6 and record.masks == [None] * 12  # one step_text call per video and step

    joint = Recorder(pipe)
    pipe.generate_joint(
        "a red ball",
        num_inference_steps=4,
        generator=seeded(5),
        callback_on_step_end=joint.callback,
        callback_on_step_end_tensor_inputs=["latents", "text_ids"],
    )
    assert joint.ids[-1].tolist() == GOLDEN[source]["joint"]
    assert digest(joint.ids) == GOLDEN[source]["joint_digest"]


def test_euler_step_text_api_is_unchanged():
    sched = UniFlowScheduler(text_vocab_size=7)
    assert sched.config.text_decoding == "euler" and sched.config.text_confidence_threshold == 0.9
    sched.set_timesteps(4)
    logits, ids = torch.randn(2, 5, 7, generator=seeded()), torch.zeros(2, 5, dtype=torch.long)
    out = sched.step_text(logits, 0.25, ids, generator=seeded())
    assert out.text_committed is None
    assert len(sched.step_text(logits, 0.25, ids, generator=seeded(), return_dict=False)) == 2
    with pytest.raises(ValueError, match="text_committed is only used with text_decoding='confidence'"):
        sched.step_text(logits, 0.25, ids, text_committed=torch.zeros(2, 5, dtype=torch.bool))


# ----------------------------------------------------------------------------------------------------------------------
# Bad configuration
# ----------------------------------------------------------------------------------------------------------------------

BAD = [
    ({"text_decoding": "greedy"}, "text_decoding must be one of \\('euler', 'confidence'\\), got 'greedy'"),
    ({"text_decoding": None}, "text_decoding must be one of"),
    ({"text_confidence_threshold": 0.0}, "text_confidence_threshold must be a float in \\(0, 1\\].*got 0.0"),
    ({"text_confidence_threshold": 1.5}, "text_confidence_threshold .* got 1.5"),
    ({"text_confidence_threshold": -0.1}, "text_confidence_threshold .* got -0.1"),
    ({"text_confidence_threshold": math.nan}, "text_confidence_threshold .* got nan"),
    ({"text_confidence_threshold": "0.9"}, "text_confidence_threshold .* got '0.9'"),
    ({"text_confidence_threshold": True}, "text_confidence_threshold .* got True"),
]


@pytest.mark.parametrize("kwargs, message", BAD)
def test_bad_decoding_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UniFlowScheduler(text_vocab_size=7, **{"text_decoding": "confidence", **kwargs})
    with pytest.raises(ValueError, match=message):
        UniFlowScheduler.from_config(UniFlowScheduler(text_vocab_size=7).config, **kwargs)
    sched = UniFlowScheduler(text_vocab_size=7)
    with pytest.raises(ValueError, match=message):
        sched.register_to_config(**kwargs)
    assert sched.config.text_decoding == "euler"  # a refused update changes nothing


def test_good_decoding_arguments_round_trip(tmp_path):
    sched = UniFlowScheduler(text_vocab_size=7, text_decoding="confidence", text_confidence_threshold=1.0)
    sched.save_config(tmp_path)
    loaded = UniFlowScheduler.from_pretrained(tmp_path)
    assert loaded.config.text_decoding == "confidence" and loaded.config.text_confidence_threshold == 1.0
    UniFlowScheduler(text_confidence_threshold=np.float32(0.5), text_vocab_size=7)  # NumPy floats are floats
    UniFlowScheduler(text_confidence_threshold=1, text_vocab_size=7)


# ----------------------------------------------------------------------------------------------------------------------
# The scheduler step
# ----------------------------------------------------------------------------------------------------------------------


def peaked(batch, length, vocab, peaks):
    """Flat logits, with `peaks[(row, position)] = (token, logit)` raised."""
    logits = torch.zeros(batch, length, vocab)
    for (row, position), (token, value) in peaks.items():
        logits[row, position, token] = value
    return logits


@pytest.mark.parametrize("source", ["uniform", "mask"])
def test_step_commits_confident_positions_and_keeps_them(source):
    kwargs = {"text_source": "mask", "mask_token_id": 6} if source == "mask" else {}
    sched = UniFlowScheduler(text_vocab_size=6, text_decoding="confidence", text_confidence_threshold=0.9, **kwargs)
    sched.set_timesteps(10)
    ids = sched.sample_text_source((2, 5), generator=seeded())
    # Row 0: positions 1 and 3 pass 0.9 (softmax of a logit of 20 among 7 is ~1); row 1: nothing passes, position 4
    # is the most confident (a logit of 1.0), so it is committed alone.
    logits = peaked(2, 5, 7, {(0, 1): (2, 20.0), (0, 3): (5, 20.0), (1, 4): (3, 1.0), (1, 0): (1, 0.5)})
    out = sched.step_text(logits, sched.text_times[0], ids, generator=seeded(1))
    expected = torch.zeros(2, 5, dtype=torch.bool)
    expected[0, 1] = expected[0, 3] = expected[1, 4] = True
    assert torch.equal(out.text_committed, expected)
    assert out.prev_text_ids[0, 1] == 2 and out.prev_text_ids[0, 3] == 5 and out.prev_text_ids[1, 4] == 3

    # Later logits that point elsewhere do not move a committed position; one more is committed per row.
    other = peaked(2, 5, 7, {(0, 1): (0, 30.0), (0, 3): (0, 30.0), (1, 4): (0, 30.0), (1, 2): (4, 2.0)})
    again = sched.step_text(
        other, sched.text_times[1], out.prev_text_ids, generator=seeded(2), text_committed=out.text_committed
    )
    assert torch.equal(again.prev_text_ids[out.text_committed], out.prev_text_ids[out.text_committed])
    assert again.text_committed.sum(dim=1).tolist() == [3, 2]
    assert bool((again.text_committed >= out.text_committed).all()) and again.prev_text_ids[1, 2] == 4


def test_final_step_commits_everything_and_full_rows_stay():
    sched = UniFlowScheduler(text_vocab_size=6, text_decoding="confidence", text_confidence_threshold=1.0)
    sched.set_timesteps(2)
    logits = torch.randn(2, 4, 6, generator=seeded())
    committed = torch.tensor([[True] * 4, [True, False, False, False]])
    ids = torch.tensor([[1, 2, 3, 4], [5, 0, 0, 0]])
    out = sched.step_text(logits, sched.text_times[0], ids, generator=seeded(), text_committed=committed)
    assert torch.equal(out.prev_text_ids[0], ids[0]) and out.text_committed[1].sum() == 2  # full row: no change
    final = sched.step_text(logits, sched.text_times[1], ids, generator=seeded(), text_committed=committed)
    assert bool(final.text_committed.all())
    assert torch.equal(final.prev_text_ids[committed], ids[committed])
    assert torch.equal(final.prev_text_ids[~committed], logits.argmax(-1)[~committed])
    prev, pred, mask = sched.step_text(
        logits, sched.text_times[1], ids, text_committed=committed, generator=seeded(), return_dict=False
    )
    assert torch.equal(prev, final.prev_text_ids) and torch.equal(mask, final.text_committed)


def test_bad_committed_masks_are_refused():
    sched = UniFlowScheduler(text_vocab_size=6, text_decoding="confidence")
    sched.set_timesteps(2)
    logits, ids = torch.randn(1, 4, 6), torch.zeros(1, 4, dtype=torch.long)
    with pytest.raises(TypeError, match="text_committed must be the bool tensor"):
        sched.step_text(logits, 0.0, ids, text_committed=torch.zeros(1, 4))
    with pytest.raises(ValueError, match="text_committed must have the shape of text_ids"):
        sched.step_text(logits, 0.0, ids, text_committed=torch.zeros(1, 3, dtype=torch.bool))


# ----------------------------------------------------------------------------------------------------------------------
# Through the pipelines
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["uniform", "mask"])
@pytest.mark.parametrize("threshold", [0.5, 1.0])
@pytest.mark.parametrize("generators", ["none", "list"])
def test_caption_commits_at_least_one_per_step_keeps_commits_and_ends_early(source, threshold, generators):
    pipe = tiny_pipe(source, text_decoding="confidence", text_confidence_threshold=threshold)
    record = Recorder(pipe)
    steps = 30  # more steps than caption tokens: at most LENGTH calls
    generator = [seeded(10), seeded(11)] if generators == "list" else None  # None: one step_text call per step
    text = pipe.caption(videos(), num_inference_steps=steps, generator=generator, callback_on_step_end=record.callback)
    assert len(text.text) == 2
    masks = record.full_masks(rows=2)
    assert len(masks) == len(record.ids) == record.calls
    assert record.calls < steps and record.calls <= LENGTH
    assert bool(masks[-1].all())  # the loop ended because every position is committed
    previous = torch.zeros_like(masks[0])
    for step, mask in enumerate(masks):
        grew = (mask.sum(dim=1) - previous.sum(dim=1)).tolist()
        assert all(n >= 1 for n, full in zip(grew, previous.all(dim=1).tolist()) if not full), step
        assert bool((mask >= previous).all())
        for later in record.ids[step:]:  # committed tokens never change afterwards
            assert torch.equal(later[mask], record.ids[step][mask])
        previous = mask


def test_low_threshold_captions_in_one_call_and_is_reproducible():
    pipe = tiny_pipe(text_decoding="confidence", text_confidence_threshold=1e-6)
    record = Recorder(pipe)
    first = pipe.caption(videos(), num_inference_steps=8, generator=seeded(4)).text
    assert record.calls == 1
    assert pipe.caption(videos(), num_inference_steps=8, generator=seeded(4)).text == first


@pytest.mark.parametrize("source", ["uniform", "mask"])
def test_joint_generation_with_confidence_decoding(source):
    pipe = tiny_pipe(source, text_decoding="confidence", text_confidence_threshold=0.5)
    record = Recorder(pipe)
    steps = 16
    out = pipe.generate_joint(
        ["a red ball", "a blue cube"],
        num_inference_steps=steps,
        generator=[seeded(1), seeded(2)],
        callback_on_step_end=record.callback,
        callback_on_step_end_tensor_inputs=["latents", "text_ids"],
    )
    assert out.frames.shape[0] == 2 and len(out.text) == 2 and np.isfinite(out.frames).all()
    assert record.calls == 2 * steps  # the video keeps its own steps (conditional + CFG pass each)
    assert len(record.ids) == steps
    masks = record.full_masks(rows=2)
    assert bool(masks[-1].all()) and len(masks) <= LENGTH < steps  # the text stopped stepping once committed
    for step, mask in enumerate(masks):
        for later in record.ids[step:]:
            assert torch.equal(later[mask], record.ids[step][mask])
