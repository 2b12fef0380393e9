"""Quantization (torchao int8 weight-only through transformers' and diffusers' configs) and torch.compile (regional,
inductor) of UniViGUModel, as a diffusers/transformers user calls them."""

import pytest
import torch
from diffusers import PipelineQuantizationConfig
from transformers import TorchAoConfig

from univigu_hf import UniViGUModel, UniViGUPipeline
from univigu_hf.testing import build_tiny_pipelines, build_tiny_univigu, make_inputs


def weight_bytes(model) -> int:
    total = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            weight = module.weight
            inner = getattr(weight, "qdata", None)  # torchao's Int8Tensor keeps the int8 values in `qdata`
            total += (inner if inner is not None else weight).numel() * (
                inner if inner is not None else weight
            ).element_size()
    return total


def test_int8_weight_only_from_pretrained(tmp_path):
    Int8WeightOnlyConfig = pytest.importorskip("torchao.quantization").Int8WeightOnlyConfig
    model = build_tiny_univigu()
    model.save_pretrained(tmp_path)
    inputs = make_inputs()
    with torch.no_grad():
        expected = model(**inputs)
    quantized = UniViGUModel.from_pretrained(tmp_path, quantization_config=TorchAoConfig(Int8WeightOnlyConfig()))
    assert type(quantized.blocks[0].ffn.net[2].weight).__name__ == "Int8Tensor"
    assert weight_bytes(quantized) < 0.3 * weight_bytes(model)
    with torch.no_grad():
        got = quantized(**inputs)
    for name in ("video_velocity", "text_logits"):
        error = (got[name] - expected[name]).abs().mean() / expected[name].abs().mean()
        assert error < 0.02, (name, float(error))


def test_pipeline_quantization_config_quantizes_the_transformer(tmp_path):
    Int8WeightOnlyConfig = pytest.importorskip("torchao.quantization").Int8WeightOnlyConfig
    pipe = build_tiny_pipelines()[0]
    pipe.save_pretrained(tmp_path)
    config = PipelineQuantizationConfig(quant_mapping={"transformer": TorchAoConfig(Int8WeightOnlyConfig())})
    quantized = UniViGUPipeline.from_pretrained(tmp_path, quantization_config=config)
    quantized.set_progress_bar_config(disable=True)
    assert type(quantized.transformer.blocks[0].attn1.to_q.weight).__name__ == "Int8Tensor"
    assert quantized.vae.decoder.conv_in.weight.dtype == torch.float32  # only what the mapping names
    run = dict(prompt="a red circle", num_inference_steps=3, output_type="pt")
    expected = pipe(generator=torch.Generator().manual_seed(0), **run).frames
    got = quantized(generator=torch.Generator().manual_seed(0), **run).frames
    assert (got - expected).abs().max() < 0.01


def test_regional_inductor_compilation_matches_eager_and_does_not_recompile():
    from torch._dynamo.utils import counters

    pipe = build_tiny_pipelines()[0]
    run = dict(prompt="a red circle", num_inference_steps=2, output_type="pt")
    expected = pipe(generator=torch.Generator().manual_seed(0), **run).frames
    torch._dynamo.reset()
    counters.clear()
    pipe.transformer.compile_repeated_blocks(backend="inductor", fullgraph=True)
    first = pipe(generator=torch.Generator().manual_seed(0), **run).frames
    graphs = counters["stats"]["unique_graphs"]
    assert graphs >= 1
    torch.testing.assert_close(first, expected, atol=1e-4, rtol=1e-4)
    pipe(generator=torch.Generator().manual_seed(1), **{**run, "num_inference_steps": 3})  # other seed, timesteps
    assert counters["stats"]["unique_graphs"] == graphs  # no recompilation after the first call
    torch._dynamo.reset()


def test_whole_model_compile_captures_each_task_in_one_graph_without_recompiling():
    from torch._dynamo.utils import counters

    pipe = build_tiny_pipelines()[0]
    seeded = lambda seed: torch.Generator().manual_seed(seed)  # noqa: E731
    video = torch.rand(5, 3, 16, 16)
    tasks = {
        "text-to-video": lambda s: pipe(prompt="a red circle", num_inference_steps=2, generator=seeded(s), output_type="pt").frames,
        "joint": lambda s: pipe.generate_joint(prompt="a red circle", num_inference_steps=2, generator=seeded(s), output_type="pt").frames,
        "caption": lambda s: pipe.caption(video, num_inference_steps=2, generator=seeded(s)).text,
    }  # fmt: skip
    eager = {name: task(0) for name, task in tasks.items()}
    torch._dynamo.reset()
    counters.clear()
    pipe.transformer.compile(backend="inductor", fullgraph=True)  # fullgraph: a graph break would raise
    try:
        for name, task in tasks.items():
            first = task(0)
            graphs = counters["stats"]["unique_graphs"]
            task(1)
            assert counters["stats"]["unique_graphs"] == graphs, f"{name} recompiled"
            if name == "caption":
                assert first == eager[name]
            else:
                torch.testing.assert_close(first, eager[name], atol=1e-5, rtol=1e-5)
        assert counters["stats"]["unique_graphs"] == 3  # one graph per task
    finally:
        torch._dynamo.reset()
