import inspect
import os

import pytest
import torch
from diffusers import WanTransformer3DModel
from transformers import AutoConfig, AutoModel

from univigu_hf import UniViGUConfig, UniViGUModel, UniViGUModelOutput, UniViGUVideoContext
from univigu_hf.models import UniViGUTransformerBlock, UniViGUVideoCache
from univigu_hf.models.wan_growth import is_text_parameter
from univigu_hf.testing import TEXT_VOCAB_SIZE, build_tiny_univigu, build_tiny_wan, make_inputs, tiny_wan_config


# ---------------------------------------------------------------------------------------------------------------------
# 1. Prior preservation: no text tokens -> exactly WanTransformer3DModel
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "batch_size,frames,height,width",
    [(1, 1, 2, 2), (2, 3, 4, 6), (2, 5, 6, 4), (3, 2, 8, 2)],
)
def test_video_only_forward_equals_wan(batch_size, frames, height, width):
    wan = build_tiny_wan(seed=3)
    model = UniViGUModel.from_wan(wan, text_vocab_size=TEXT_VOCAB_SIZE)
    inputs = make_inputs(batch_size, frames, height, width, seed=batch_size + frames)
    with torch.no_grad():
        expected = wan(inputs["video_latents"], inputs["video_timestep"], inputs["encoder_hidden_states"]).sample
        got = model(
            video_latents=inputs["video_latents"],
            video_timestep=inputs["video_timestep"],
            encoder_hidden_states=inputs["encoder_hidden_states"],
        )
    assert got.text_logits is None
    torch.testing.assert_close(got.video_velocity, expected, atol=1e-5, rtol=0)


# Cached and full steps run different GEMM/attention shapes, which multithreaded CPU kernels sum in a different order:
# the logits agree to float32 rounding (a few ulps), not bitwise.
CACHE_TOLERANCE = {"atol": 1e-6, "rtol": 2e-6}


def test_from_wan_keeps_wan_state_dict_names_and_values(tiny_wan):
    model = UniViGUModel.from_wan(tiny_wan, text_vocab_size=TEXT_VOCAB_SIZE)
    ours = model.state_dict()
    wan = tiny_wan.state_dict()
    assert {k for k in ours if not is_text_parameter(k)} == set(wan)
    for key, value in wan.items():
        assert torch.equal(ours[key], value), key
    # The Wan instance is copied, never shared: training the unified model leaves the user's Wan untouched.
    assert ours["proj_out.weight"].data_ptr() != wan["proj_out.weight"].data_ptr()


def test_to_wan_round_trips_the_video_path(tiny_wan):
    model = UniViGUModel.from_wan(tiny_wan, text_vocab_size=TEXT_VOCAB_SIZE)
    with torch.no_grad():
        for parameter in model.parameters():  # make sure trained weights, not the original ones, come back
            parameter.add_(0.01)
    exported = model.to_wan()
    assert isinstance(exported, WanTransformer3DModel)
    assert dict(exported.config) == dict(tiny_wan.config)
    inputs = make_inputs()
    with torch.no_grad():
        expected = model(
            video_latents=inputs["video_latents"],
            video_timestep=inputs["video_timestep"],
            encoder_hidden_states=inputs["encoder_hidden_states"],
        ).video_velocity
        actual = exported(inputs["video_latents"], inputs["video_timestep"], inputs["encoder_hidden_states"]).sample
    torch.testing.assert_close(actual, expected, atol=0, rtol=0)


def test_from_wan_text_branch_initialisation(tiny_wan):
    model = UniViGUModel.from_wan(tiny_wan, text_vocab_size=TEXT_VOCAB_SIZE)
    block = model.blocks[0]
    for (name, ours), (_, video) in zip(block.text_ffn.named_parameters(), block.ffn.named_parameters()):
        assert torch.equal(ours, video), name
    assert torch.equal(model.text_scale_shift_table, model.scale_shift_table)
    for (name, ours), (_, wan) in zip(
        model.text_time_embedding.named_parameters(),
        [(n, p) for n, p in model.condition_embedder.named_parameters() if not n.startswith("text_embedder")],
    ):
        assert torch.equal(ours, wan), name
    assert torch.count_nonzero(model.text_proj_out.weight) == 0
    assert torch.count_nonzero(model.text_proj_out.bias) == 0
    # Zero head: uniform logits before training.
    with torch.no_grad():
        logits = model(**make_inputs()).text_logits
    assert torch.count_nonzero(logits) == 0


@pytest.mark.parametrize("text_ffn_dim", [16, 48])
def test_from_wan_narrow_and_wide_text_experts(tiny_wan, text_ffn_dim):
    model = UniViGUModel.from_wan(tiny_wan, text_vocab_size=TEXT_VOCAB_SIZE, text_ffn_dim=text_ffn_dim)
    assert model.config.text_ffn_dim == text_ffn_dim
    block = model.blocks[1]
    assert block.text_ffn.net[0].proj.weight.shape == (text_ffn_dim, 24)
    assert block.ffn.net[0].proj.weight.shape == (32, 24)
    hidden = torch.randn(2, 5, 24)
    if text_ffn_dim > 32:
        # Wider: starts as exactly the video FFN (new units have zero output weights).
        torch.testing.assert_close(block.text_ffn(hidden), block.ffn(hidden), atol=1e-6, rtol=0)
    else:
        # Narrower: a magnitude-pruned copy, i.e. a subset of the video FFN's hidden units.
        video_rows = {tuple(row.tolist()) for row in block.ffn.net[0].proj.weight}
        assert all(tuple(row.tolist()) in video_rows for row in block.text_ffn.net[0].proj.weight)


def test_from_wan_path_root_and_pipeline_subfolder(tmp_path, tiny_wan):
    tiny_wan.save_pretrained(tmp_path / "transformer_only")
    tiny_wan.save_pretrained(tmp_path / "pipeline" / "transformer")
    inputs = make_inputs()
    with torch.no_grad():
        expected = tiny_wan(inputs["video_latents"], inputs["video_timestep"], inputs["encoder_hidden_states"]).sample
    for path in (tmp_path / "transformer_only", tmp_path / "pipeline", str(tmp_path / "pipeline")):
        model = UniViGUModel.from_wan(path, text_vocab_size=TEXT_VOCAB_SIZE, max_text_length=12)
        assert model.config.max_text_length == 12
        with torch.no_grad():
            got = model(
                video_latents=inputs["video_latents"],
                video_timestep=inputs["video_timestep"],
                encoder_hidden_states=inputs["encoder_hidden_states"],
            ).video_velocity
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_from_wan_rejects_bad_sources(tmp_path):
    with pytest.raises(TypeError, match="wan must be"):
        UniViGUModel.from_wan(42, text_vocab_size=8)
    with pytest.raises(ValueError, match="without config.json"):
        UniViGUModel.from_wan(tmp_path, text_vocab_size=8)
    with pytest.raises(ValueError, match="image_dim"):
        UniViGUModel.from_wan(
            WanTransformer3DModel(**tiny_wan_config(image_dim=8, added_kv_proj_dim=24)), text_vocab_size=8
        )


# ---------------------------------------------------------------------------------------------------------------------
# 2. Joint attention and video_attends_text
# ---------------------------------------------------------------------------------------------------------------------
def _video_only(model, inputs):
    return model(
        video_latents=inputs["video_latents"],
        video_timestep=inputs["video_timestep"],
        encoder_hidden_states=inputs["encoder_hidden_states"],
    ).video_velocity


def test_video_does_not_attend_text_when_disabled():
    model = build_tiny_univigu(video_attends_text=False)
    inputs = make_inputs()
    with torch.no_grad():
        joint = model(**inputs)
        alone = _video_only(model, inputs)
    torch.testing.assert_close(joint.video_velocity, alone, atol=1e-6, rtol=0)
    assert joint.text_logits.shape == (2, 5, TEXT_VOCAB_SIZE)


def test_text_changes_video_when_attention_is_joint(tiny_model):
    inputs = make_inputs()
    with torch.no_grad():
        joint = tiny_model(**inputs).video_velocity
        alone = _video_only(tiny_model, inputs)
        other_text = tiny_model(**{**inputs, "text_ids": (inputs["text_ids"] + 1) % TEXT_VOCAB_SIZE}).video_velocity
    assert (joint - alone).abs().max() > 1e-4
    assert (joint - other_text).abs().max() > 1e-4


def test_video_changes_text_and_timesteps_matter(tiny_model):
    inputs = make_inputs()
    with torch.no_grad():
        base = tiny_model(**inputs).text_logits
        other_video = tiny_model(**{**inputs, "video_latents": inputs["video_latents"] * -1}).text_logits
        other_time = tiny_model(**{**inputs, "text_timestep": inputs["text_timestep"] * 0.5}).text_logits
        text_only = tiny_model(
            text_ids=inputs["text_ids"],
            text_timestep=inputs["text_timestep"],
            encoder_hidden_states=inputs["encoder_hidden_states"],
        )
    assert (base - other_video).abs().max() > 1e-4
    assert (base - other_time).abs().max() > 1e-4
    assert text_only.video_velocity is None and text_only.text_logits.shape == base.shape


def test_text_positions_use_rotary_embedding(tiny_model):
    # Same tokens in another order give other logits (positions matter), and a permutation-equivariant
    # computation would merely permute them.
    inputs = make_inputs()
    permutation = torch.tensor([4, 3, 2, 1, 0])
    with torch.no_grad():
        base = tiny_model(**inputs).text_logits
        permuted = tiny_model(**{**inputs, "text_ids": inputs["text_ids"][:, permutation]}).text_logits
    assert (base[:, permutation] - permuted).abs().max() > 1e-4


# ---------------------------------------------------------------------------------------------------------------------
# 2b. Video context cache (captioning with cached video keys/values)
# ---------------------------------------------------------------------------------------------------------------------
def _text_step(model, inputs, context, **kwargs):
    return model(text_ids=inputs["text_ids"], text_timestep=inputs["text_timestep"], video_context=context, **kwargs)


def _video_context(model, inputs, with_text=True):
    keep = ("video_latents", "video_timestep", "encoder_hidden_states")
    kwargs = inputs if with_text else {k: inputs[k] for k in keep}
    return model(**kwargs, return_video_context=True).video_context


@pytest.mark.parametrize("condition_tokens", [7, 1, None], ids=["prompt", "one_token_prompt", "zero_condition"])
@pytest.mark.parametrize("with_text", [True, False], ids=["context_from_joint_step", "context_from_video_only"])
def test_video_context_is_exact_when_video_does_not_attend_text(with_text, condition_tokens):
    # A context from a joint step has buffers with room for the text rows; one from a video-only step concatenates.
    # With a one-token condition (or none: captioning) text steps reuse the cross-attention output.
    model = build_tiny_univigu(video_attends_text=False)
    inputs = make_inputs(text_length=6)
    if condition_tokens is None:
        inputs["encoder_hidden_states"] = None
    else:
        inputs["encoder_hidden_states"] = inputs["encoder_hidden_states"][:, :condition_tokens]
    later = make_inputs(text_length=6, seed=1)  # another caption state and text time, same video
    later = {**inputs, "text_ids": later["text_ids"], "text_timestep": later["text_timestep"]}
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        context = _video_context(model, inputs, with_text)
        full = model(**later)
        cached = _text_step(model, later, context)
        full_masked = model(**later, text_attention_mask=mask)
        cached_masked = _text_step(model, later, context, text_attention_mask=mask)
    assert context.exact and context.num_layers == 2 and context.batch_size == 2
    assert context.num_video_tokens == 3 * 2 * 3 and context.keys[0].shape == (2, 18, 2, 12)
    assert (context.key_value_buffers(0, 6) is not None) == with_text
    assert (context.cross_attention_outputs is not None) == (condition_tokens != 7)
    assert cached.video_velocity is None
    torch.testing.assert_close(cached.text_logits, full.text_logits, **CACHE_TOLERANCE)
    torch.testing.assert_close(cached_masked.text_logits, full_masked.text_logits, **CACHE_TOLERANCE)


def test_video_context_of_a_joint_attention_model_is_an_approximation(tiny_model):
    inputs = make_inputs()
    later = make_inputs(seed=1)
    later = {**inputs, "text_ids": later["text_ids"], "text_timestep": later["text_timestep"]}
    with torch.no_grad():
        output = tiny_model(**inputs, return_video_context=True)
        # At the caption state it was computed with, the context reproduces that step...
        same_step = _text_step(tiny_model, inputs, output.video_context)
        # ...at another one the video keys/values are stale.
        stale = _text_step(tiny_model, later, output.video_context)
        full = tiny_model(**later)
    assert not output.video_context.exact
    torch.testing.assert_close(same_step.text_logits, output.text_logits, **CACHE_TOLERANCE)
    assert (stale.text_logits - full.text_logits).abs().max() > 1e-4


def test_return_video_context_as_tuple_and_memory(tiny_model):
    inputs = make_inputs()
    with torch.no_grad():
        velocity, logits, context = tiny_model(**inputs, return_video_context=True, return_dict=False)
        plain = tiny_model(**inputs)
    torch.testing.assert_close(velocity, plain.video_velocity, atol=0, rtol=0)
    torch.testing.assert_close(logits, plain.text_logits, atol=0, rtol=0)
    assert plain.video_context is None
    # Keys and values of 2 layers (batch 2 x 18 video tokens x 24 channels each, with room for the 5 text tokens of
    # a cached step) plus the projected condition (2 x 7 x 24).
    assert context.nbytes == (2 * 2 * 2 * (18 + 5) * 24 + 2 * 7 * 24) * 4


@pytest.mark.parametrize("bad", [0, -3, 2.0, True, "6"])
def test_reserve_text_rows_rejects_a_bad_count(bad):
    model = build_tiny_univigu(video_attends_text=False)
    with torch.no_grad():
        context = _video_context(model, make_inputs())
    with pytest.raises(ValueError, match=f"num_text_tokens must be a positive integer, got {bad!r}"):
        context.reserve_text_rows(bad)


def test_text_steps_with_a_context_under_gradient_checkpointing():
    """The recomputed block reads the same cache layer: the gradients of a cached step are those without
    checkpointing."""
    inputs, grads = make_inputs(), []
    for checkpointing in (False, True):
        model = build_tiny_univigu(video_attends_text=False).train()
        if checkpointing:
            _enable_checkpointing(model, use_reentrant=False)
        with torch.no_grad():
            context = _video_context(model, inputs)
        _text_step(model, make_inputs(seed=1), context).text_logits.logsumexp(-1).mean().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert set(grads[0]) == set(grads[1]) and "blocks.0.attn1.to_q.weight" in grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-5, msg=name)


def test_video_cache_is_filled_by_the_forward():
    """`return_video_context=True` hands every block a layer of one new cache, which its attention fills."""
    model = build_tiny_univigu(video_attends_text=False)
    with torch.no_grad():
        cache = _video_context(model, make_inputs())
    assert isinstance(cache, UniViGUVideoCache) and UniViGUVideoContext is UniViGUVideoCache
    assert cache.is_filled and len(cache.layers) == 2 and cache.exact
    assert cache.encoder_hidden_states is cache.prompt_hidden_states
    assert all(
        layer.keys.shape == (2, 18, 2, 12) and layer.buffers[0].shape == (2, 23, 2, 12) for layer in cache.layers
    )
    assert not UniViGUVideoCache(2, exact=True).is_filled
    assert len(inspect.signature(UniViGUTransformerBlock.forward).parameters) <= 7  # self + at most 6


def test_text_steps_with_a_context_keep_autograd_working():
    """With autograd on, cached steps concatenate instead of writing into the shared buffers (no in-place reuse)."""
    model = build_tiny_univigu(video_attends_text=False)
    inputs = make_inputs()
    with torch.no_grad():
        context = _video_context(model, inputs)
    first = _text_step(model, inputs, context).text_logits
    second = _text_step(model, make_inputs(seed=1), context).text_logits
    (first.square().mean() + second.square().mean()).backward()
    assert model.text_embedding.weight.grad is not None
    assert torch.isfinite(model.text_embedding.weight.grad).all()


BAD_VIDEO_CONTEXT_CALLS = [
    ("return without video", dict(drop_video=True, return_video_context=True), ValueError, "needs video_latents"),
    ("not a context", dict(drop_video=True, video_context=(1, 2)), TypeError, "video_context must be a UniViGU"),
    ("context and video", dict(video_context="context"), ValueError, "video_latents must be None with video_context"),
    (
        "context and condition",
        dict(drop_video=True, video_context="context", encoder_hidden_states=torch.zeros(2, 1, 32)),
        ValueError,
        "encoder_hidden_states must be None with video_context",
    ),
    (
        "empty cache",
        dict(drop_video=True, video_context=UniViGUVideoCache(2, exact=True)),
        ValueError,
        "video_context holds no video keys/values",
    ),
    (
        "context batch",
        dict(drop_video=True, video_context="context", text_ids=torch.zeros(3, 5, dtype=torch.long)),
        ValueError,
        "video_context holds 2 layers for batch size 2",
    ),
]


@pytest.mark.parametrize(
    "name,changes,error,message", BAD_VIDEO_CONTEXT_CALLS, ids=[case[0] for case in BAD_VIDEO_CONTEXT_CALLS]
)
def test_bad_video_context_is_a_clear_error(tiny_model, name, changes, error, message):
    inputs = make_inputs()
    with torch.no_grad():
        context = tiny_model(**inputs, return_video_context=True).video_context
    changes = dict(changes)
    if changes.pop("drop_video", False):
        inputs.update(video_latents=None, video_timestep=None, encoder_hidden_states=None)
    if changes.get("video_context") == "context":
        changes["video_context"] = context
    if "text_ids" in changes:
        inputs["text_timestep"] = torch.zeros(changes["text_ids"].shape[0])
    inputs.update(changes)
    with pytest.raises(error, match=message):
        tiny_model(**inputs)


# ---------------------------------------------------------------------------------------------------------------------
# 3. Padding mask
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("video_attends_text", [True, False])
def test_padded_text_positions_change_nothing_else(video_attends_text):
    model = build_tiny_univigu(video_attends_text=video_attends_text)
    inputs = make_inputs(text_length=7)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 0]])
    garbage = torch.randint(0, TEXT_VOCAB_SIZE, (2, 7), generator=torch.Generator().manual_seed(9))
    other_ids = torch.where(mask.bool(), inputs["text_ids"], garbage)
    with torch.no_grad():
        a = model(**inputs, text_attention_mask=mask)
        b = model(**{**inputs, "text_ids": other_ids}, text_attention_mask=mask.bool())
        # Dropping the padding altogether gives the same outputs for the real tokens of sample 0.
        short = model(**{k: v[:1] for k, v in inputs.items() if k != "text_ids"}, text_ids=inputs["text_ids"][:1, :4])
    torch.testing.assert_close(a.video_velocity, b.video_velocity, atol=1e-6, rtol=0)
    valid = mask.bool()
    torch.testing.assert_close(a.text_logits[valid], b.text_logits[valid], atol=1e-5, rtol=0)
    torch.testing.assert_close(a.video_velocity[:1], short.video_velocity, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.text_logits[0, :4], short.text_logits[0], atol=1e-5, rtol=0)


def test_all_true_mask_equals_no_mask(tiny_model):
    inputs = make_inputs()
    with torch.no_grad():
        a = tiny_model(**inputs)
        b = tiny_model(**inputs, text_attention_mask=torch.ones(2, 5, dtype=torch.long))
    torch.testing.assert_close(a.text_logits, b.text_logits, atol=0, rtol=0)


# ---------------------------------------------------------------------------------------------------------------------
# 4. Saving / loading
# ---------------------------------------------------------------------------------------------------------------------
def test_save_pretrained_automodel_round_trip_is_bit_exact(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    files = sorted(os.listdir(tmp_path))
    assert files == ["config.json", "model.safetensors"]
    assert isinstance(AutoConfig.from_pretrained(tmp_path), UniViGUConfig)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert isinstance(loaded, UniViGUModel)
    original, reloaded = tiny_model.state_dict(), loaded.state_dict()
    assert set(original) == set(reloaded)
    for key in original:
        assert torch.equal(original[key], reloaded[key]), key
    assert torch.equal(tiny_model.rope.freqs_cos, loaded.rope.freqs_cos)
    # from_pretrained realigns mmap'ed CPU tensors, so the forward reproduces the saved model's bit for bit.
    inputs = make_inputs()
    with torch.no_grad():
        a, b = tiny_model(**inputs), loaded(**inputs)
    assert torch.equal(a.video_velocity, b.video_velocity)
    assert torch.equal(a.text_logits, b.text_logits)


def test_from_config_initialisation_is_finite_and_official():
    config = UniViGUConfig(**tiny_wan_config(), text_vocab_size=32)
    model = AutoModel.from_config(config)
    assert isinstance(model, UniViGUModel)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert torch.isfinite(model.rope.freqs_cos).all()
    assert torch.count_nonzero(model.text_proj_out.weight) == 0
    assert 0.8 < model.text_embedding.weight.std() < 1.2
    with torch.no_grad():
        out = model(**make_inputs(vocab=32))
    assert torch.isfinite(out.video_velocity).all()


# ---------------------------------------------------------------------------------------------------------------------
# 7. Gradient checkpointing, dtypes, attention backends, device_map
# ---------------------------------------------------------------------------------------------------------------------
def _enable_checkpointing(model, use_reentrant: bool) -> None:
    kwargs = {"use_reentrant": use_reentrant}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.23
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        assert model.is_activation_checkpointing
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        assert model.is_gradient_checkpointing


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_gradient_checkpointing_gives_same_gradients(use_reentrant):
    # The block takes every tensor that carries gradients as a positional argument, so the reentrant variant (which
    # only sees those) gives the same gradients too.
    inputs = make_inputs()
    grads, block_calls = [], []
    for checkpointing in (False, True):
        model = build_tiny_univigu().train()
        calls = []
        model.blocks[0].ffn.register_forward_pre_hook(lambda module, args, calls=calls: calls.append(1))
        if checkpointing:
            _enable_checkpointing(model, use_reentrant)
        out = model(**inputs)
        loss = out.video_velocity.square().mean() + out.text_logits.logsumexp(-1).mean()
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        block_calls.append(len(calls))
    assert block_calls == [1, 2]  # a checkpointed block runs again in the backward pass
    assert set(grads[0]) == set(grads[1])
    assert any(is_text_parameter(n) for n in grads[0]) and "blocks.0.ffn.net.2.weight" in grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-5, msg=name)


def test_bf16_loading_keeps_fp32_modules_and_matches_diffusers(tmp_path):
    wan = build_tiny_wan(seed=5)
    wan.save_pretrained(tmp_path / "wan")
    model = UniViGUModel.from_wan(tmp_path / "wan", text_vocab_size=TEXT_VOCAB_SIZE)
    model.save_pretrained(tmp_path / "uni")
    ours = AutoModel.from_pretrained(tmp_path / "uni", dtype=torch.bfloat16)
    reference = WanTransformer3DModel.from_pretrained(tmp_path / "wan", torch_dtype=torch.bfloat16)
    dtypes = {name: p.dtype for name, p in ours.named_parameters()}
    assert dtypes["blocks.0.attn1.to_q.weight"] == torch.bfloat16
    assert dtypes["blocks.0.text_ffn.net.0.proj.weight"] == torch.bfloat16
    for name in ("scale_shift_table", "blocks.0.norm2.weight", "text_norm_out.weight", "text_scale_shift_table"):
        assert dtypes[name] == torch.float32, name
    assert dtypes["text_time_embedding.time_embedder.linear_1.weight"] == torch.float32
    assert dtypes["text_time_embedding.time_proj.weight"] == torch.bfloat16
    for name, parameter in reference.named_parameters():
        assert dtypes[name] == parameter.dtype, name
    inputs = make_inputs()
    latents, context = inputs["video_latents"].bfloat16(), inputs["encoder_hidden_states"].bfloat16()
    with torch.no_grad():
        expected = reference(latents, inputs["video_timestep"], context).sample
        got = ours(video_latents=latents, video_timestep=inputs["video_timestep"], encoder_hidden_states=context)
        joint = ours(**{**inputs, "video_latents": latents, "encoder_hidden_states": context})
    assert got.video_velocity.dtype == torch.bfloat16
    torch.testing.assert_close(got.video_velocity, expected, atol=1e-2, rtol=0)
    assert joint.text_logits.dtype == torch.bfloat16 and torch.isfinite(joint.text_logits.float()).all()


@pytest.mark.parametrize("video_attends_text", [True, False])
def test_native_attention_backend_runs_the_joint_attention(monkeypatch, video_attends_text):
    from diffusers import attention_backend
    from diffusers.models.attention_dispatch import AttentionBackendName, _AttentionBackendRegistry

    model = build_tiny_univigu(video_attends_text=video_attends_text)
    calls = []
    native = _AttentionBackendRegistry._backends[AttentionBackendName.NATIVE]

    def counting_native(**kwargs):
        calls.append(kwargs["query"].shape[1])
        return native(**kwargs)

    monkeypatch.setitem(_AttentionBackendRegistry._backends, AttentionBackendName.NATIVE, counting_native)
    inputs = make_inputs()
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    with torch.no_grad():
        default = model(**inputs, text_attention_mask=mask, return_video_context=True)
        model.set_attention_backend("native")
        assert model.blocks[0].attn1.processor._attention_backend.value == "native"
        calls.clear()
        selected = model(**inputs, text_attention_mask=mask)
        full_calls = list(calls)
        calls.clear()
        cached = _text_step(model, inputs, default.video_context, text_attention_mask=mask)
        model.reset_attention_backend()
        with attention_backend("_native_math"):  # diffusers' context manager, another kernel
            math = model(**inputs, text_attention_mask=mask)
    # Per block: self-attention over [video; text] (video_attends_text=False: video and text queries separately),
    # then the cross-attention; a cached step runs the text queries only.
    video, text = 18, 5
    self_attention = [video + text] if video_attends_text else [video, text]
    assert full_calls == (self_attention + [video + text]) * 2
    assert calls == [text, text] * 2
    for output in (selected, math):
        torch.testing.assert_close(output.video_velocity, default.video_velocity, atol=1e-5, rtol=0)
        torch.testing.assert_close(output.text_logits, default.text_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(cached.text_logits, default.text_logits, **CACHE_TOLERANCE)
    with pytest.raises(ValueError, match="backend"):
        model.set_attention_backend("not-a-backend")


def test_device_map_and_low_cpu_mem_usage_loading(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path, device_map="cpu")
    assert {p.device.type for p in loaded.parameters()} == {"cpu"}
    inputs = make_inputs()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).text_logits, tiny_model(**inputs).text_logits, atol=1e-5, rtol=0)
    assert UniViGUModel._no_split_modules == ["UniViGUTransformerBlock"]


def test_return_dict_false_and_output_type(tiny_model):
    inputs = make_inputs()
    with torch.no_grad():
        as_tuple = tiny_model(**inputs, return_dict=False)
        as_output = tiny_model(**inputs)
    assert isinstance(as_output, UniViGUModelOutput)
    assert torch.equal(as_tuple[0], as_output.video_velocity) and torch.equal(as_tuple[1], as_output.text_logits)


def test_scalar_timestep_is_broadcast(tiny_model):
    inputs = make_inputs()
    with torch.no_grad():
        a = tiny_model(**{**inputs, "video_timestep": torch.tensor([300.0, 300.0]), "text_timestep": 0})
        b = tiny_model(**{**inputs, "video_timestep": torch.tensor(300.0), "text_timestep": torch.zeros(2)})
    torch.testing.assert_close(a.text_logits, b.text_logits, atol=0, rtol=0)


def test_default_condition_is_the_official_zero_context(tiny_model):
    inputs = make_inputs()
    del inputs["encoder_hidden_states"]
    with torch.no_grad():
        default = tiny_model(**inputs).text_logits
        zeros = tiny_model(**inputs, encoder_hidden_states=torch.zeros(2, 512, 32)).text_logits
    torch.testing.assert_close(default, zeros, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------------------------------
# 8. Bad input
# ---------------------------------------------------------------------------------------------------------------------
def _bad(**changes):
    inputs = make_inputs()
    inputs.update(changes)
    return inputs


BAD_INPUTS = [
    (
        "no modality",
        dict(video_latents=None, text_ids=None, video_timestep=None, text_timestep=None),
        ValueError,
        "needs video_latents, text_ids",
    ),
    ("latent rank", dict(video_latents=torch.randn(2, 16, 4, 6)), ValueError, "video_latents must have shape"),
    ("latent channels", dict(video_latents=torch.randn(2, 4, 3, 4, 6)), ValueError, "in_channels=16"),
    (
        "latent int dtype",
        dict(video_latents=torch.zeros(2, 16, 3, 4, 6, dtype=torch.long)),
        TypeError,
        "video_latents must be a floating-point",
    ),
    ("odd height", dict(video_latents=torch.randn(2, 16, 3, 5, 6)), ValueError, "video_latents height \\(5\\)"),
    ("odd width", dict(video_latents=torch.randn(2, 16, 3, 4, 7)), ValueError, "video_latents width \\(7\\)"),
    ("beyond rope table", dict(video_latents=torch.randn(2, 16, 3, 4, 66)), ValueError, "exceeds rope_max_seq_len=32"),
    ("missing video timestep", dict(video_timestep=None), ValueError, "video_timestep is required"),
    ("timestep batch", dict(video_timestep=torch.zeros(3)), ValueError, "video_timestep must have shape \\(2,\\)"),
    ("text timestep batch", dict(text_timestep=torch.zeros(2, 2)), ValueError, "text_timestep must have shape"),
    ("timestep type", dict(text_timestep="0"), TypeError, "text_timestep must be a torch.Tensor"),
    ("missing text timestep", dict(text_timestep=None), ValueError, "text_timestep is required"),
    (
        "ids out of vocab",
        dict(text_ids=torch.full((2, 5), TEXT_VOCAB_SIZE)),
        ValueError,
        f"text_ids must be token ids in \\[0, text_vocab_size={TEXT_VOCAB_SIZE}\\), found {TEXT_VOCAB_SIZE}",
    ),
    ("negative ids", dict(text_ids=torch.full((2, 5), -1)), ValueError, "found -1"),
    ("float ids", dict(text_ids=torch.zeros(2, 5)), TypeError, "text_ids must be an integer"),
    ("ids rank", dict(text_ids=torch.zeros(2, 5, 1, dtype=torch.long)), ValueError, "text_ids must have shape"),
    (
        "batch mismatch",
        dict(text_ids=torch.zeros(3, 5, dtype=torch.long), text_timestep=torch.zeros(3)),
        ValueError,
        "same batch size",
    ),
    ("mask shape", dict(text_attention_mask=torch.ones(2, 4)), ValueError, "text_attention_mask must have the shape"),
    ("mask type", dict(text_attention_mask=[[1] * 5] * 2), TypeError, "text_attention_mask must be a torch.Tensor"),
    (
        "context width",
        dict(encoder_hidden_states=torch.randn(2, 7, 31)),
        ValueError,
        "encoder_hidden_states must have shape \\(batch=2, sequence, text_dim=32\\)",
    ),
    ("context batch", dict(encoder_hidden_states=torch.randn(1, 7, 32)), ValueError, "encoder_hidden_states"),
    ("timestep without video", dict(video_latents=None), ValueError, "video_timestep was given without video_latents"),
]


@pytest.mark.parametrize("name,changes,error,message", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_a_clear_error(tiny_model, name, changes, error, message):
    with pytest.raises(error, match=message):
        tiny_model(**_bad(**changes))


def test_fully_masked_text_without_video_is_refused(tiny_model):
    inputs = make_inputs()
    with pytest.raises(ValueError, match="masks every text token"):
        tiny_model(
            text_ids=inputs["text_ids"],
            text_timestep=inputs["text_timestep"],
            text_attention_mask=torch.tensor([[1, 1, 0, 0, 0], [0, 0, 0, 0, 0]]),
        )


def test_low_cpu_mem_usage_loading(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path, low_cpu_mem_usage=True)
    assert all(p.device.type == "cpu" for p in loaded.parameters())
    assert torch.equal(loaded.text_proj_out.weight, tiny_model.text_proj_out.weight)


def test_peft_lora_adapters_save_reload_and_merge(tmp_path, tiny_model):
    from peft import LoraConfig, PeftModel, get_peft_model

    tiny_model.save_pretrained(tmp_path / "base")
    inputs = make_inputs()
    with torch.no_grad():
        base = tiny_model(**inputs).text_logits
    lora = LoraConfig(
        r=4, target_modules=["to_q", "to_k", "to_v"], modules_to_save=["text_proj_out"], init_lora_weights=False
    )
    peft_model = get_peft_model(tiny_model, lora)
    with torch.no_grad():
        adapted = peft_model(**inputs).text_logits
    assert (adapted - base).abs().max() > 1e-3
    peft_model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()

    reloaded = PeftModel.from_pretrained(AutoModel.from_pretrained(tmp_path / "base"), tmp_path / "adapter")
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).text_logits, adapted, atol=0, rtol=0)
    merged = reloaded.merge_and_unload()
    assert isinstance(merged, UniViGUModel)
    with torch.no_grad():
        torch.testing.assert_close(merged(**inputs).text_logits, adapted, atol=1e-4, rtol=0)


def test_transformers_add_adapter_and_disable(tmp_path, tiny_model):
    from peft import LoraConfig

    inputs = make_inputs()
    with torch.no_grad():
        base = tiny_model(**inputs).text_logits
    tiny_model.add_adapter(LoraConfig(r=4, target_modules=["to_q"], init_lora_weights=False))
    with torch.no_grad():
        adapted = tiny_model(**inputs).text_logits
    tiny_model.disable_adapters()
    with torch.no_grad():
        disabled = tiny_model(**inputs).text_logits
    assert (adapted - base).abs().max() > 1e-3
    assert torch.equal(disabled, base)
