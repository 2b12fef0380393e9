"""diffusers' memory and speed toolbox on UniViGUModel / UniViGUPipeline, through the calls a diffusers user makes for
Wan: the five cache hooks on text-to-video and joint generation (and `disable_cache` restoring the exact outputs),
layerwise casting, group offloading."""

import pytest
import torch
from diffusers import (
    FasterCacheConfig,
    FirstBlockCacheConfig,
    MagCacheConfig,
    PyramidAttentionBroadcastConfig,
    TaylorSeerCacheConfig,
)
from diffusers.hooks import HookRegistry

from univigu_hf import shapes
from univigu_hf.pipelines.univigu.mag_cache_calibration import calibrate_mag_ratios
from univigu_hf.testing import build_tiny_pipelines, build_tiny_univigu, make_inputs


STEPS = 8


@pytest.fixture(scope="module")
def pipe():
    return build_tiny_pipelines()[0]


def run(method, **kwargs):
    return method(
        prompt="a red circle moving left",
        num_inference_steps=STEPS,
        generator=torch.Generator().manual_seed(0),
        output_type="pt",
        **kwargs,
    )


def cache_configs(pipe) -> dict:
    timestep = lambda: pipe.current_timestep  # noqa: E731
    return {
        "first block": FirstBlockCacheConfig(threshold=0.5),
        "taylorseer": TaylorSeerCacheConfig(cache_interval=2, disable_cache_before_step=2),
        "magcache": MagCacheConfig(mag_ratios=[1.0] * STEPS, num_inference_steps=STEPS, threshold=0.5),
        "fastercache": FasterCacheConfig(
            spatial_attention_block_skip_range=2, current_timestep_callback=timestep, is_guidance_distilled=True
        ),
        "pab": PyramidAttentionBroadcastConfig(
            spatial_attention_block_skip_range=2,
            spatial_attention_timestep_skip_range=(-1, 999),
            current_timestep_callback=timestep,
        ),
    }


class CountFFN:
    """Counts the feed-forward calls of every block: a block skipped by a cache does not call it."""

    def __init__(self, transformer):
        self.calls = 0
        self.handles = [b.ffn.register_forward_pre_hook(self._count) for b in transformer.blocks]

    def _count(self, module, args):
        self.calls += 1

    def remove(self):
        for handle in self.handles:
            handle.remove()


@pytest.mark.parametrize("name", ["first block", "taylorseer", "magcache", "fastercache", "pab"])
@pytest.mark.parametrize("task", ["generate_video", "generate_joint"])
def test_cache_hooks_run_and_disable_cache_restores_the_exact_outputs(pipe, name, task):
    method = getattr(pipe, task)
    plain = run(method)
    pipe.transformer.enable_cache(cache_configs(pipe)[name])
    assert pipe.transformer.is_cache_enabled
    counter = CountFFN(pipe.transformer)
    try:
        cached = run(method)
    finally:
        counter.remove()
        pipe.transformer.disable_cache()
    assert cached.frames.shape == plain.frames.shape and torch.isfinite(cached.frames).all()
    if task == "generate_joint":
        assert len(cached.text) == 1
    if name in ("first block", "magcache"):  # these skip whole blocks
        full = STEPS * 2 * len(pipe.transformer.blocks)  # two CFG passes per step
        assert counter.calls < full
        assert not torch.equal(cached.frames, plain.frames)
    again = run(method)
    assert torch.equal(again.frames, plain.frames)
    if task == "generate_joint":
        assert again.text == plain.text


def test_caption_refuses_the_cache_hooks(pipe):
    video = torch.rand(5, 3, 16, 16)
    pipe.transformer.enable_cache(FirstBlockCacheConfig(threshold=0.1))
    try:
        with pytest.raises(
            ValueError, match=r"caption does not run with diffusers' cache hooks.*FirstBlockCacheConfig"
        ):
            pipe.caption(video, num_inference_steps=2)
    finally:
        pipe.transformer.disable_cache()
    assert len(pipe.caption(video, num_inference_steps=2).text) == 1


def test_fastercache_with_batched_cfg_is_refused_with_the_reason(pipe):
    with pytest.raises(ValueError, match="is_guidance_distilled=True"):
        pipe.transformer.enable_cache(FasterCacheConfig(current_timestep_callback=lambda: 0))
    assert not pipe.transformer.is_cache_enabled


def test_the_text_stream_off_path_works_with_a_cache(pipe):
    plain = run(pipe, use_text_stream=False)
    pipe.transformer.enable_cache(FirstBlockCacheConfig(threshold=0.5))
    try:
        cached = run(pipe, use_text_stream=False)
    finally:
        pipe.transformer.disable_cache()
    assert cached.frames.shape == plain.frames.shape


def test_mag_ratios_calibration_and_the_shipped_default(pipe):
    ratios = calibrate_mag_ratios(
        pipe, ["a red circle", "a blue square"], 4, generator=torch.Generator().manual_seed(0)
    )
    assert len(ratios) == 4 and ratios[0] == 1.0 and all(0.0 < r < 10.0 for r in ratios)
    assert not pipe.transformer.is_cache_enabled
    config = shapes.default_mag_cache_config(threshold=0.1)
    assert config.num_inference_steps == 20 and len(config.mag_ratios) == 20 and config.threshold == 0.1


@pytest.mark.parametrize("compute_dtype", [torch.float32, torch.bfloat16])
def test_layerwise_casting_stores_fp8_and_computes_close_to_fp32(compute_dtype):
    model = build_tiny_univigu()
    inputs = make_inputs()
    with torch.no_grad():
        expected = model(**inputs)
    model = build_tiny_univigu().to(compute_dtype)
    model.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=compute_dtype)
    assert model.blocks[0].ffn.net[2].weight.dtype == torch.float8_e4m3fn
    assert model.text_time_embedding.time_proj.weight.dtype == compute_dtype  # skipped: feeds fp32 modulation
    assert model.patch_embedding.weight.dtype == compute_dtype
    cast = {k: v.to(compute_dtype) if v.is_floating_point() else v for k, v in inputs.items()}
    with torch.no_grad():
        got = model(**cast)
    for name in ("video_velocity", "text_logits"):
        assert got[name].dtype == compute_dtype
        error = (got[name].float() - expected[name]).abs().mean() / expected[name].abs().mean()
        assert 0 < error < 0.1, (name, float(error))


@pytest.mark.parametrize("offload_type, extra", [("block_level", {"num_blocks_per_group": 1}), ("leaf_level", {})])
def test_group_offloading_gives_the_same_outputs(offload_type, extra):
    model = build_tiny_univigu()
    inputs = make_inputs()
    with torch.no_grad():
        expected = model(**inputs)
    model.enable_group_offload(torch.device("cpu"), offload_type=offload_type, **extra)
    assert HookRegistry.check_if_exists_or_initialize(model.blocks[0]).hooks
    with torch.no_grad():
        got = model(**inputs)
    assert torch.equal(got.video_velocity, expected.video_velocity)
    assert torch.equal(got.text_logits, expected.text_logits)


def test_regional_compilation_targets_the_transformer_blocks():
    model = build_tiny_univigu()
    assert model._repeated_blocks == ["UniViGUTransformerBlock"]
    model.compile_repeated_blocks(backend="eager")
    assert all(
        hasattr(block, "_compiled_call_impl") and block._compiled_call_impl is not None for block in model.blocks
    )
    inputs = make_inputs()
    with torch.no_grad():
        assert torch.isfinite(model(**inputs).video_velocity).all()


def test_calibration_refuses_a_generator_list_of_the_wrong_length(pipe):
    with pytest.raises(ValueError, match="generator list has 1 generators for 2 prompts"):
        calibrate_mag_ratios(pipe, ["a", "b"], 2, generator=[torch.Generator()])
    assert not pipe.transformer.is_cache_enabled


def test_the_calibration_command_writes_the_ratios(tmp_path, pipe, capsys):
    import json

    from univigu_hf.cli import main

    model = tmp_path / "model"
    pipe.save_pretrained(model)
    output = tmp_path / "ratios.json"
    argv = ["calibrate-mag-cache", "--model", str(model), "--prompt", "a red circle", "--prompt", "a blue square"]
    assert main([*argv, "--steps", "3", "--output", str(output), "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads(output.read_text())
    assert report["num_inference_steps"] == 3 and len(report["mag_ratios"]) == 3 and report["mag_ratios"][0] == 1.0
    assert main(["calibrate-mag-cache", "--model", str(model), "--quiet"]) == 2
    assert "--prompt is required with --model" in capsys.readouterr().err
