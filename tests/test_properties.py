"""Property-based tests (hypothesis): the scheduler's text path and caption decoding accept any logits and ids and
always return valid tokens and valid strings; non-finite logits are a clear error, never a crash inside torch."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from univigu_hf import UniFlowScheduler
from univigu_hf.testing import WORDS, build_tiny_pipelines


# Small, reproducible runs: the suite stays fast and a failure replays identically.
PROPERTY = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
MODEL_VOCAB = 40  # larger than the tiny tokenizer's 31 tokens: ids beyond it must decode to nothing


@st.composite
def logits_and_ids(draw, vocab=None, finite_only=True):
    batch, length = draw(st.integers(1, 3)), draw(st.integers(1, 6))
    vocab = vocab or draw(st.integers(1, 12))
    dtype = draw(st.sampled_from(DTYPES))
    limit = float(torch.finfo(dtype).max)
    width = {torch.float64: 64, torch.float16: 16}.get(dtype, 32)
    finite = st.floats(-limit, limit, allow_nan=False, allow_infinity=False, width=width)
    values = draw(
        st.lists(st.one_of(finite, st.just(-np.inf)), min_size=batch * length * vocab, max_size=batch * length * vocab)
    )
    logits = torch.tensor(values, dtype=torch.float64).reshape(batch, length, vocab)
    # Each position keeps at least one finite logit (a position whose every token is ruled out is an error).
    first = logits[..., 0]
    logits[..., 0] = torch.where(torch.isinf(first), torch.zeros_like(first), first)
    logits = logits.to(dtype)
    ids = torch.tensor(draw(st.lists(st.integers(0, vocab - 1), min_size=batch * length, max_size=batch * length)))
    return logits, ids.reshape(batch, length)


@st.composite
def times(draw):
    t = draw(st.floats(0.0, 1.0))
    return t, draw(st.floats(t, 1.0))


def scheduler_for(vocab, source, final):
    if source == "mask":
        return UniFlowScheduler(
            text_source="mask", mask_token_id=vocab - 1, text_vocab_size=vocab, text_final_step=final
        )
    return UniFlowScheduler(text_vocab_size=vocab, text_final_step=final)


@PROPERTY
@given(
    case=logits_and_ids(),
    when=times(),
    source=st.sampled_from(["uniform", "mask"]),
    final=st.sampled_from(["argmax", "sample"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_step_text_returns_valid_tokens_for_any_logits(case, when, source, final, seed):
    logits, ids = case
    vocab = logits.shape[-1]
    scheduler = scheduler_for(vocab, source, final)
    out = scheduler.step_text(
        logits, when[0], ids, generator=torch.Generator().manual_seed(seed), next_text_time=when[1]
    )
    for tokens in (out.prev_text_ids, out.pred_original_text_ids):
        assert tokens.dtype == torch.long and tokens.shape == ids.shape
        assert int(tokens.min()) >= 0 and int(tokens.max()) < vocab
    assert torch.equal(out.pred_original_text_ids, logits.argmax(dim=-1))
    if when[1] == when[0] < 1 - 1e-6:  # no time passes (and not the final step): nothing moves
        assert torch.equal(out.prev_text_ids, ids)
    # A token only ever stays or jumps to a token with a finite logit.
    moved = out.prev_text_ids != ids
    chosen = logits.gather(-1, out.prev_text_ids[..., None])[..., 0]
    assert bool(torch.isfinite(chosen[moved]).all())


@PROPERTY
@given(case=logits_and_ids(), bad=st.sampled_from([float("nan"), float("inf")]), position=st.integers(0, 10**6))
def test_step_text_rejects_nan_and_positive_infinity(case, bad, position):
    logits, ids = case
    flat = logits.flatten().clone()
    flat[position % flat.numel()] = bad
    scheduler = UniFlowScheduler(text_vocab_size=logits.shape[-1])
    with pytest.raises(ValueError, match="text_logits must be finite"):
        scheduler.step_text(flat.reshape(logits.shape), 0.5, ids, next_text_time=0.75)


@PROPERTY
@given(
    ids=st.lists(st.lists(st.integers(0, 9), min_size=4, max_size=4), min_size=1, max_size=3),
    t=st.floats(0.0, 1.0),
    source=st.sampled_from(["uniform", "mask"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_add_noise_text_stays_in_the_vocabulary(ids, t, source, seed):
    clean = torch.tensor(ids)
    scheduler = scheduler_for(10, source, "argmax")
    noisy = scheduler.add_noise_text(clean, t, generator=torch.Generator().manual_seed(seed))
    assert noisy.shape == clean.shape and noisy.dtype == torch.long
    assert int(noisy.min()) >= 0 and int(noisy.max()) < 10
    if t == 1.0:
        assert torch.equal(noisy, clean)


@pytest.fixture(scope="module")
def pipe():
    return build_tiny_pipelines(text_vocab_size=MODEL_VOCAB)[0]


def assert_valid_captions(texts, batch):
    assert isinstance(texts, list) and len(texts) == batch
    for text in texts:
        assert isinstance(text, str) and text == text.strip()
        assert all(word in WORDS for word in text.split()), text  # no <pad>, </s>, <unk> or out-of-range ids


@PROPERTY
@given(rows=st.lists(st.lists(st.integers(0, MODEL_VOCAB - 1), min_size=1, max_size=12), min_size=1, max_size=4))
def test_caption_decode_of_any_ids_is_valid_text(pipe, rows):
    length = max(len(row) for row in rows)
    ids = torch.tensor([row + [0] * (length - len(row)) for row in rows])
    assert_valid_captions(pipe._decode_text(ids), len(rows))


@PROPERTY
@given(case=logits_and_ids(vocab=MODEL_VOCAB), seed=st.integers(0, 2**32 - 1))
def test_any_logits_give_valid_captions(pipe, case, seed):
    """The last step of captioning (logits -> tokens -> text) with whatever logits the model produces."""
    logits, ids = case
    generator = torch.Generator().manual_seed(seed)
    tokens = pipe.scheduler.step_text(logits, 0.9, ids, generator=generator, next_text_time=1.0).prev_text_ids
    assert_valid_captions(pipe._decode_text(tokens), ids.shape[0])
