"""Tests for `univigu_hf.scheduling_uniflow.UniFlowScheduler` (CPU, deterministic, fast)."""

import math

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from univigu_hf.schedulers import (
    UniFlowScheduler,
    UniFlowSchedulerOutput,
    UniFlowTextSchedulerOutput,
)


VOCAB = 50


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _oracle_logits(target: torch.LongTensor, vocab_size: int, value: float = 1e4) -> torch.Tensor:
    """Logits whose softmax is (numerically exactly) a delta on `target`."""
    logits = torch.zeros(*target.shape, vocab_size)
    return logits.scatter_(-1, target[..., None], value)


# ----------------------------------------------------------------------------------------------------------------------
# 1. Video: parity with diffusers' FlowMatchEulerDiscreteScheduler
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shift", [1.0, 3.0, 5.0, 7.5])
@pytest.mark.parametrize("num_inference_steps", [1, 2, 10, 50])
def test_flow_match_euler_grid_matches_diffusers(shift, num_inference_steps):
    ours = UniFlowScheduler(shift=shift)
    ref = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
    # The training grids (before set_timesteps) agree too.
    assert torch.equal(ours.timesteps, ref.timesteps)
    assert torch.equal(ours.sigmas, ref.sigmas)
    assert (ours.sigma_min, ours.sigma_max) == (ref.sigma_min, ref.sigma_max)

    ours.set_timesteps(num_inference_steps)
    ref.set_timesteps(num_inference_steps)
    assert ours.timesteps.dtype == ref.timesteps.dtype == torch.float32
    assert torch.equal(ours.timesteps, ref.timesteps)
    assert torch.equal(ours.sigmas, ref.sigmas)
    assert len(ours.sigmas) == num_inference_steps + 1 and ours.sigmas[-1].item() == 0.0
    assert ours.text_times.shape == (num_inference_steps + 1,)


@pytest.mark.parametrize("shift", [1.0, 3.0, 5.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_flow_match_euler_step_matches_diffusers(shift, dtype):
    num_steps = 10
    ours = UniFlowScheduler(shift=shift)
    ref = FlowMatchEulerDiscreteScheduler(shift=shift)
    ours.set_timesteps(num_steps)
    ref.set_timesteps(num_steps)
    gen = _gen(0)
    sample_ours = torch.randn(2, 4, 3, 8, 8, generator=gen).to(dtype)
    sample_ref = sample_ours.clone()
    outputs = [torch.randn(2, 4, 3, 8, 8, generator=gen).to(dtype) for _ in range(num_steps)]
    for t_ours, t_ref, v in zip(ours.timesteps, ref.timesteps, outputs):
        assert t_ours == t_ref
        out = ours.step(v, t_ours, sample_ours)
        assert isinstance(out, UniFlowSchedulerOutput)
        sample_ours = out.prev_sample
        sample_ref = ref.step(v, t_ref, sample_ref).prev_sample
        assert sample_ours.dtype == dtype
        torch.testing.assert_close(sample_ours, sample_ref, atol=1e-6, rtol=0)
    assert ours.step_index == ref.step_index == num_steps
    assert torch.equal(sample_ours, sample_ref)


def test_step_begin_index_mid_schedule_and_tuple_output_match_diffusers():
    ours, ref = UniFlowScheduler(shift=3.0), FlowMatchEulerDiscreteScheduler(shift=3.0)
    ours.set_timesteps(8)
    ref.set_timesteps(8)
    ours.set_begin_index(3)
    ref.set_begin_index(3)
    gen = _gen(1)
    sample = torch.randn(1, 4, 2, 4, 4, generator=gen)
    x_ours, x_ref = sample.clone(), sample.clone()
    for t in ours.timesteps[3:]:
        v = torch.randn(sample.shape, generator=gen)
        (x_ours,) = ours.step(v, t, x_ours, return_dict=False)
        x_ref = ref.step(v, t, x_ref, return_dict=False)[0]
    assert torch.equal(x_ours, x_ref)

    # Without a begin index the first step looks the timestep up (index_for_timestep).
    ours.set_timesteps(8)
    ref.set_timesteps(8)
    v = torch.randn(sample.shape, generator=gen)
    a = ours.step(v, ours.timesteps[2], sample).prev_sample
    b = ref.step(v, ref.timesteps[2], sample).prev_sample
    assert ours.step_index == ref.step_index == 3
    assert torch.equal(a, b)


def test_scale_noise_and_add_noise_match_diffusers():
    ours, ref = UniFlowScheduler(shift=3.0), FlowMatchEulerDiscreteScheduler(shift=3.0)
    ours.set_timesteps(10)
    ref.set_timesteps(10)
    gen = _gen(2)
    x0 = torch.randn(3, 4, 2, 4, 4, generator=gen)
    noise = torch.randn(x0.shape, generator=gen)
    t = ours.timesteps[[0, 4, 9]]
    expected = ref.scale_noise(x0, t, noise)
    assert torch.equal(ours.scale_noise(x0, t, noise), expected)
    sigmas = ours.timestep_to_sigma(t)
    torch.testing.assert_close(ours.add_noise(x0, noise, sigmas), expected, atol=1e-6, rtol=0)


def test_add_noise_broadcast_and_velocity_target():
    sched = UniFlowScheduler()
    x0 = torch.randn(2, 3, 4)
    noise = torch.randn(2, 3, 4)
    torch.testing.assert_close(sched.add_noise(x0, noise, 0.25), 0.75 * x0 + 0.25 * noise)
    torch.testing.assert_close(sched.add_noise(x0, noise, torch.tensor(1.0)), noise)
    mixed = sched.add_noise(x0, noise, torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(mixed[0], x0[0])
    torch.testing.assert_close(mixed[1], noise[1])
    assert torch.equal(sched.get_velocity_target(x0, noise), noise - x0)
    # The velocity target is the time derivative of the path: x_s = x0 + s * v.
    torch.testing.assert_close(sched.add_noise(x0, noise, 0.3), x0 + 0.3 * sched.get_velocity_target(x0, noise))


@pytest.mark.parametrize(
    "sigmas, got",
    [
        (707.0, "got 707.0"),
        (-0.5, "got -0.5"),
        (float("nan"), "got nan"),
        (torch.tensor(1.5), "got 1.5"),
        (torch.tensor([0.5, 999.0]), "got 1 of 2 values outside it, e.g. 999"),
        (torch.tensor([0.5, float("nan")]), "got 1 of 2 values outside it, e.g. nan"),
        (torch.tensor([3, 0]), "got 1 of 2 values outside it, e.g. 3"),
    ],
)
def test_add_noise_refuses_sigmas_outside_the_unit_interval(sigmas, got):
    with pytest.raises(ValueError) as error:
        UniFlowScheduler().add_noise(torch.zeros(2, 3), torch.zeros(2, 3), sigmas)
    message = str(error.value)
    assert message.startswith("sigmas must be noise levels in [0, 1], " + got), message
    assert "scale_noise" in message and "timestep_to_sigma" in message


def test_add_noise_with_the_schedulers_own_timesteps_points_to_scale_noise():
    # What diffusers' DDPM-style training scripts do: `add_noise(latents, noise, timesteps)`. It used to return
    # x0 + 707 * (noise - x0) without a word.
    sched = UniFlowScheduler()
    sched.set_timesteps(4)
    x0, noise = torch.randn(2, 3, generator=_gen(0)), torch.randn(2, 3, generator=_gen(1))
    timesteps = sched.timesteps[[1, 2]]
    with pytest.raises(ValueError, match=r"sigmas must be noise levels in \[0, 1\].*scale_noise"):
        sched.add_noise(x0, noise, timesteps)
    # The two ways out give the same noisy samples.
    via_sigmas = sched.add_noise(x0, noise, sched.timestep_to_sigma(timesteps))
    torch.testing.assert_close(via_sigmas, sched.scale_noise(x0, timesteps, noise), atol=1e-6, rtol=0)
    # The end points are valid sigmas, also as integer tensors.
    torch.testing.assert_close(sched.add_noise(x0, noise, torch.tensor([0, 1])), torch.stack([x0[0], noise[1]]))


def test_add_noise_check_compiles_without_a_graph_break():
    sched = UniFlowScheduler()
    x0, noise = torch.randn(2, 3, generator=_gen(0)), torch.randn(2, 3, generator=_gen(1))
    sigmas = torch.tensor([0.25, 0.75])
    compiled = torch.compile(sched.add_noise, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(x0, noise, sigmas), sched.add_noise(x0, noise, sigmas))


# ----------------------------------------------------------------------------------------------------------------------
# 2. Video: the official (DiffSynth) "linear" schedule
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shift", [1.0, 3.0, 5.0])
@pytest.mark.parametrize("num_inference_steps", [1, 7, 50])
def test_linear_schedule_matches_official_formula(shift, num_inference_steps):
    sched = UniFlowScheduler(shift=shift, video_sigma_schedule="linear")
    sched.set_timesteps(num_inference_steps)
    # Independent float64 recomputation: s_k = 1 - k / N (k = 0..N-1), shifted, then a terminal 0.
    n = num_inference_steps
    raw = [1.0 - k / n for k in range(n)]
    expected = [shift * s / (1.0 + (shift - 1.0) * s) for s in raw] + [0.0]
    expected = torch.tensor(expected, dtype=torch.float64)
    torch.testing.assert_close(sched.sigmas.double(), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(sched.timesteps.double(), 1000.0 * expected[:-1], atol=1e-3, rtol=0)
    assert sched.sigmas[0].item() == 1.0 and sched.sigmas[-1].item() == 0.0

    # Euler: x <- x + v * (sigma_next - sigma).
    x = torch.ones(1, 2)
    v = torch.full((1, 2), 2.0)
    out = sched.step(v, sched.timesteps[0], x).prev_sample
    torch.testing.assert_close(out, x + v * (sched.sigmas[1] - sched.sigmas[0]))


# ----------------------------------------------------------------------------------------------------------------------
# 3. Text: oracle posterior reaches the target
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text_source, text_time_schedule, final_step, exponent",
    [
        ("uniform", "uniform", "argmax", 1.0),
        ("uniform", "video", "argmax", 1.0),
        ("uniform", "uniform", "sample", 2.0),
        ("mask", "uniform", "argmax", 1.0),
        ("mask", "video", "sample", 1.0),
    ],
)
def test_oracle_posterior_reaches_target(text_source, text_time_schedule, final_step, exponent):
    mask_id = VOCAB  # mask token outside the uniform range, as in the official code (logits have VOCAB + 1 entries)
    sched = UniFlowScheduler(
        shift=3.0,
        text_source=text_source,
        text_vocab_size=VOCAB,
        mask_token_id=mask_id,
        text_final_step=final_step,
        text_kappa_exponent=exponent,
    )
    sched.set_timesteps(12, text_time_schedule=text_time_schedule)
    assert sched.text_times[0].item() == 0.0 and sched.text_times[-1].item() == 1.0
    gen = _gen(3)
    target = torch.randint(0, VOCAB, (4, 32), generator=gen)
    logits = _oracle_logits(target, VOCAB + 1)
    ids = sched.sample_text_source(target.shape, generator=gen)
    if text_source == "mask":
        assert (ids == mask_id).all()
    correct = []
    for i in range(len(sched.timesteps)):
        out = sched.step_text(logits, sched.text_times[i], ids, generator=gen)
        assert isinstance(out, UniFlowTextSchedulerOutput)
        assert torch.equal(out.pred_original_text_ids, target)
        # Tokens only ever move to the sampled clean token.
        assert ((out.prev_text_ids == ids) | (out.prev_text_ids == target)).all()
        ids = out.prev_text_ids
        correct.append((ids == target).float().mean().item())
    assert torch.equal(ids, target)
    assert correct == sorted(correct)  # monotone progress with an oracle


def test_oracle_marginals_follow_kappa_linear():
    """With kappa(t) = t the Euler jump probability h / (1 - t) keeps P(clean at t_i) = t_i exactly."""
    sched = UniFlowScheduler(text_source="mask", mask_token_id=VOCAB, text_vocab_size=VOCAB)
    sched.set_timesteps(4)
    gen = _gen(4)
    target = torch.randint(0, VOCAB, (64, 256), generator=gen)
    logits = _oracle_logits(target, VOCAB + 1)
    ids = sched.sample_text_source(target.shape)
    for i in range(3):
        ids = sched.step_text(logits, sched.text_times[i], ids, generator=gen).prev_text_ids
        assert abs((ids == target).float().mean().item() - sched.text_times[i + 1].item()) < 0.01


@pytest.mark.parametrize("final_step", ["argmax", "sample"])
def test_step_text_jumps_and_draws_follow_the_posterior(final_step):
    """x1 is drawn only where a token jumps: the jump rate and the distribution of the drawn tokens are exact."""
    sched = UniFlowScheduler(text_vocab_size=4, text_final_step=final_step)
    probs = torch.tensor([0.5, 0.3, 0.2, 0.0])
    logits = probs.log().expand(64, 256, 4).clone()
    ids = torch.full((64, 256), 3)  # the posterior never proposes token 3, so every change is a drawn x1
    # kappa(t) = t: from t = 0.5 to 0.75 each token jumps with probability h / (1 - t) = 0.5.
    out = sched.step_text(logits, 0.5, ids, generator=_gen(11), next_text_time=0.75).prev_text_ids
    jumped = out != 3
    assert abs(jumped.float().mean().item() - 0.5) < 0.02
    frequencies = torch.bincount(out[jumped], minlength=4).double() / jumped.sum()
    torch.testing.assert_close(frequencies, probs.double(), atol=0.02, rtol=0)
    # The final step: the argmax everywhere, or a draw for every token.
    final = sched.step_text(logits, 0.9, ids, generator=_gen(12), next_text_time=1.0).prev_text_ids
    if final_step == "argmax":
        assert (final == 0).all()
    else:
        frequencies = torch.bincount(final.flatten(), minlength=4).double() / final.numel()
        torch.testing.assert_close(frequencies, probs.double(), atol=0.02, rtol=0)


def test_step_text_explicit_next_time_batched_and_tuple():
    sched = UniFlowScheduler(text_vocab_size=VOCAB)
    gen = _gen(5)
    target = torch.randint(0, VOCAB, (2, 16), generator=gen)
    logits = _oracle_logits(target, VOCAB)
    ids = sched.sample_text_source(target.shape, generator=gen)
    # Row 0 jumps straight to the end (final step -> argmax), row 1 does not move (h = 0).
    prev, pred = sched.step_text(
        logits,
        torch.tensor([0.0, 0.3]),
        ids,
        generator=gen,
        next_text_time=torch.tensor([1.0, 0.3]),
        return_dict=False,
    )
    assert torch.equal(prev[0], target[0])
    assert torch.equal(prev[1], ids[1])
    assert torch.equal(pred, target)
    # At t = 1 (kappa = 1) nothing divides by zero and the result is the argmax.
    out = sched.step_text(logits, 1.0, ids, next_text_time=1.0)
    assert torch.equal(out.prev_text_ids, target)


# ----------------------------------------------------------------------------------------------------------------------
# 4. Text: forward noising frequencies
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("exponent", [1.0, 2.0])
def test_add_noise_text_keep_frequency_uniform(exponent):
    vocab = 1000
    sched = UniFlowScheduler(text_vocab_size=vocab, text_kappa_exponent=exponent)
    gen = _gen(6)
    clean = torch.randint(0, vocab, (64, 256), generator=gen)
    for t in (0.25, 0.5, 0.8):
        noisy = sched.add_noise_text(clean, t, generator=gen)
        assert noisy.shape == clean.shape and noisy.dtype == torch.long
        assert ((noisy >= 0) & (noisy < vocab)).all()
        kappa = t**exponent
        expected = kappa + (1.0 - kappa) / vocab  # a uniform source token equals the clean one with prob 1 / V
        assert abs((noisy == clean).float().mean().item() - expected) < 0.01
        assert math.isclose(sched.kappa(t).item(), kappa, rel_tol=1e-6)


@pytest.mark.parametrize("exponent", [1.0, 2.0])
def test_add_noise_text_mask_source(exponent):
    mask_id = VOCAB
    sched = UniFlowScheduler(text_source="mask", mask_token_id=mask_id, text_kappa_exponent=exponent)
    gen = _gen(7)
    clean = torch.randint(0, VOCAB, (64, 256), generator=gen)
    for t in (0.25, 0.5, 0.8):
        noisy = sched.add_noise_text(clean, t, generator=gen)
        kept = noisy == clean
        assert (noisy[~kept] == mask_id).all()
        assert abs(kept.float().mean().item() - t**exponent) < 0.01
    # Per-sample times: t = 0 is all source, t = 1 is all clean.
    noisy = sched.add_noise_text(clean[:2], torch.tensor([0.0, 1.0]), generator=gen)
    assert (noisy[0] == mask_id).all() and torch.equal(noisy[1], clean[1])


def test_kappa_and_derivative():
    sched = UniFlowScheduler(text_kappa_exponent=2.0)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    torch.testing.assert_close(sched.kappa(t), t**2)
    torch.testing.assert_close(sched.kappa_derivative(t), 2 * t)


# ----------------------------------------------------------------------------------------------------------------------
# 5. Determinism
# ----------------------------------------------------------------------------------------------------------------------


def test_determinism_with_generators():
    sched = UniFlowScheduler(text_vocab_size=VOCAB)
    sched.set_timesteps(5)
    clean = torch.randint(0, VOCAB, (4, 64), generator=_gen(0))
    logits = torch.randn(4, 64, VOCAB, generator=_gen(0))

    def run(seed):
        g = _gen(seed)
        noisy = sched.add_noise_text(clean, 0.5, generator=g)
        stepped = sched.step_text(logits, sched.text_times[2], noisy, generator=g).prev_text_ids
        return (
            noisy,
            stepped,
            sched.sample_text_source((4, 64), generator=g),
            sched.sample_text_times(8, generator=g),
            *(
                sched.sample_video_sigmas(8, generator=g, mode=m)
                for m in ("uniform", "shifted_uniform", "logit_normal")
            ),
        )

    first, again, other = run(11), run(11), run(12)
    for a, b, c in zip(first, again, other):
        assert torch.equal(a, b)
        assert not torch.equal(a, c)


# ----------------------------------------------------------------------------------------------------------------------
# 6. Time maps and samplers
# ----------------------------------------------------------------------------------------------------------------------


def test_time_maps():
    sched = UniFlowScheduler()
    assert sched.text_time_to_timestep(0.0).item() == 1000.0
    assert sched.text_time_to_timestep(1.0).item() == 0.0
    assert sched.text_time_to_timestep(torch.tensor([0.3])).dtype == torch.float32
    grid = torch.linspace(0, 1, 101, dtype=torch.float64)
    timesteps = sched.text_time_to_timestep(grid)
    assert torch.equal(timesteps, torch.round(1000 * (1 - grid)).float())
    torch.testing.assert_close(sched.timestep_to_text_time(timesteps).double(), grid, atol=1e-6, rtol=0)
    assert torch.equal(sched.text_time_to_timestep(sched.timestep_to_text_time(timesteps)), timesteps)

    sigmas = torch.tensor([0.0, 0.25, 1.0])
    torch.testing.assert_close(sched.sigma_to_timestep(sigmas), 1000 * sigmas)
    torch.testing.assert_close(sched.timestep_to_sigma(sched.sigma_to_timestep(sigmas)), sigmas)
    torch.testing.assert_close(sched.shift_sigmas(sigmas), 3 * sigmas / (1 + 2 * sigmas))
    assert len(sched) == 1000

    # "video" text grid is synchronised with the video sigmas.
    sched.set_timesteps(6, text_time_schedule="video")
    torch.testing.assert_close(sched.text_times, 1.0 - sched.sigmas.double())


def test_samplers_ranges_and_modes():
    sched = UniFlowScheduler(shift=3.0)
    n = 4096
    uniform = sched.sample_video_sigmas(n, generator=_gen(0), mode="uniform")
    shifted = sched.sample_video_sigmas(n, generator=_gen(0), mode="shifted_uniform")
    logit = sched.sample_video_sigmas(n, generator=_gen(0), mode="logit_normal", logit_mean=0.5, logit_std=0.8)
    text = sched.sample_text_times(n, generator=_gen(0))
    for x in (uniform, shifted, logit, text):
        assert x.shape == (n,) and x.dtype == torch.float32
        assert ((x >= 0) & (x <= 1)).all()
    torch.testing.assert_close(shifted, sched.shift_sigmas(uniform))
    assert abs(uniform.mean().item() - 0.5) < 0.03
    assert shifted.mean() > uniform.mean()  # shift > 1 moves mass toward noise
    expected_logit = sched.shift_sigmas(torch.sigmoid(torch.randn(n, generator=_gen(0)) * 0.8 + 0.5))
    torch.testing.assert_close(logit, expected_logit)
    assert sched.sample_video_sigmas(3, device="cpu").device.type == "cpu"


def test_samplers_take_a_shift_and_a_dtype():
    sched = UniFlowScheduler(shift=3.0)
    uniform = sched.sample_video_sigmas(64, generator=_gen(1), mode="uniform")
    shifted = sched.sample_video_sigmas(64, generator=_gen(1), shift=5.0)
    torch.testing.assert_close(shifted, sched.shift_sigmas(uniform, shift=5.0), rtol=0, atol=0)
    assert sched.shift == 3.0  # the override does not change the scheduler
    times = sched.sample_text_times(8, generator=_gen(2), dtype=torch.float64)
    assert times.dtype == torch.float64 and torch.equal(times, torch.rand(8, generator=_gen(2), dtype=torch.float64))


# ----------------------------------------------------------------------------------------------------------------------
# 7. Bad input
# ----------------------------------------------------------------------------------------------------------------------


def _ready(**kwargs) -> UniFlowScheduler:
    sched = UniFlowScheduler(text_vocab_size=VOCAB, **kwargs)
    sched.set_timesteps(4)
    return sched


_IDS = torch.zeros(2, 8, dtype=torch.long)
_LOGITS = torch.zeros(2, 8, VOCAB)

BAD_CALLS = [
    ("bad text_source", lambda: UniFlowScheduler(text_source="foo"), ValueError, r"text_source must be one of"),
    ("mask without id", lambda: UniFlowScheduler(text_source="mask"), ValueError, "mask_token_id"),
    ("bad schedule", lambda: UniFlowScheduler(video_sigma_schedule="cosine"), ValueError, "video_sigma_schedule"),
    ("bad final step", lambda: UniFlowScheduler(text_final_step="greedy"), ValueError, "text_final_step"),
    ("bad exponent", lambda: UniFlowScheduler(text_kappa_exponent=0.0), ValueError, "text_kappa_exponent"),
    ("bad shift", lambda: UniFlowScheduler(shift=-1.0), ValueError, "shift"),
    ("bad vocab", lambda: UniFlowScheduler(text_vocab_size=0), ValueError, "text_vocab_size"),
    ("bad T", lambda: UniFlowScheduler(num_train_timesteps=0), ValueError, "num_train_timesteps"),
    ("zero steps", lambda: UniFlowScheduler().set_timesteps(0), ValueError, "num_inference_steps"),
    ("negative steps", lambda: UniFlowScheduler().set_timesteps(-3), ValueError, "num_inference_steps"),
    ("float steps", lambda: UniFlowScheduler().set_timesteps(2.5), ValueError, "num_inference_steps"),
    (
        "bad text grid",
        lambda: UniFlowScheduler().set_timesteps(4, text_time_schedule="x"),
        ValueError,
        "text_time_sch",
    ),
    ("uniform no vocab", lambda: UniFlowScheduler().sample_text_source((2, 3)), ValueError, "text_vocab_size"),
    ("t > 1", lambda: _ready().add_noise_text(_IDS, 1.5), ValueError, "text_time"),
    ("t < 0", lambda: _ready().add_noise_text(_IDS, torch.tensor(-0.1)), ValueError, "text_time"),
    ("t batch", lambda: _ready().add_noise_text(_IDS, torch.rand(3)), ValueError, "text_time"),
    ("float ids", lambda: _ready().add_noise_text(_IDS.float(), 0.5), TypeError, "text_ids"),
    ("step t > 1", lambda: _ready().step_text(_LOGITS, 1.2, _IDS), ValueError, "text_time"),
    ("next < t", lambda: _ready().step_text(_LOGITS, 0.5, _IDS, next_text_time=0.25), ValueError, "next_text_time"),
    ("logits 2d", lambda: _ready().step_text(_LOGITS[0], 0.5, _IDS), ValueError, "text_logits"),
    ("ids shape", lambda: _ready().step_text(_LOGITS, 0.5, _IDS[:, :4]), ValueError, "text_ids"),
    ("ids batch", lambda: _ready().step_text(_LOGITS, 0.5, _IDS[:1]), ValueError, "text_ids"),
    ("ids >= V", lambda: _ready().step_text(_LOGITS, 0.5, _IDS + VOCAB), ValueError, "text_ids"),
    ("ids < 0", lambda: _ready().step_text(_LOGITS, 0.5, _IDS - 1), ValueError, "text_ids"),
    ("no set_timesteps", lambda: UniFlowScheduler().step_text(_LOGITS, 0.5, _IDS), ValueError, "set_timesteps"),
    (
        "sigmas batch",
        lambda: UniFlowScheduler().add_noise(torch.zeros(2, 3), torch.zeros(2, 3), torch.rand(3)),
        ValueError,
        "sigmas",
    ),
    (
        "noise shape",
        lambda: UniFlowScheduler().add_noise(torch.zeros(2, 3), torch.zeros(2, 4), 0.5),
        ValueError,
        "noise",
    ),
    ("int timestep", lambda: _ready().step(torch.zeros(1), 3, torch.zeros(1)), ValueError, "timestep"),
    ("off-grid timestep", lambda: _ready().step(torch.zeros(1), 123.0, torch.zeros(1)), ValueError, "timestep"),
    ("sampler mode", lambda: UniFlowScheduler().sample_video_sigmas(2, mode="beta"), ValueError, "mode"),
    ("sampler batch", lambda: UniFlowScheduler().sample_text_times(0), ValueError, "batch_size"),
    (
        "sampler shift",
        lambda: UniFlowScheduler().sample_video_sigmas(2, shift=0.0),
        ValueError,
        "shift must be None or a positive",
    ),
    (
        "text time dtype",
        lambda: UniFlowScheduler().sample_text_times(2, dtype=torch.long),
        TypeError,
        "dtype must be a floating",
    ),
]


@pytest.mark.parametrize("call, error, match", [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_bad_text_source_message_is_explicit():
    with pytest.raises(ValueError) as excinfo:
        UniFlowScheduler(text_source="foo")
    assert str(excinfo.value) == "text_source must be one of ('uniform', 'mask'), got 'foo'"


# ----------------------------------------------------------------------------------------------------------------------
# 8. Config round trip
# ----------------------------------------------------------------------------------------------------------------------


def test_config_round_trip(tmp_path):
    kwargs = {
        "num_train_timesteps": 500,
        "shift": 5.0,
        "video_sigma_schedule": "linear",
        "text_source": "mask",
        "text_kappa_exponent": 2.0,
        "text_vocab_size": 1234,
        "mask_token_id": 1234,
        "text_final_step": "sample",
    }
    sched = UniFlowScheduler(**kwargs)
    sched.save_config(tmp_path)
    loaded = UniFlowScheduler.from_pretrained(tmp_path)
    from_config = UniFlowScheduler.from_config(sched.config)
    for other in (loaded, from_config):
        assert isinstance(other, UniFlowScheduler)
        for key, value in kwargs.items():
            assert other.config[key] == value, key
    loaded.set_timesteps(7)
    sched.set_timesteps(7)
    assert torch.equal(loaded.sigmas, sched.sigmas)

    # Defaults round-trip as well, and a FlowMatchEulerDiscreteScheduler config is compatible.
    default = UniFlowScheduler.from_config(UniFlowScheduler().config)
    assert default.config.shift == 3.0 and default.config.text_source == "uniform"
    assert FlowMatchEulerDiscreteScheduler in UniFlowScheduler().compatibles
    converted = UniFlowScheduler.from_config(FlowMatchEulerDiscreteScheduler(shift=5.0).config)
    assert converted.config.shift == 5.0
