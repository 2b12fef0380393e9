"""What diffusers' and transformers' own classes do, and users' code relies on, done the same way by ours: the call
signature, precomputed prompt embeddings, variants and shards, loading without some components, resizing the
vocabulary, `from_config` dtypes, and a scheduler built without the vocabulary."""

import inspect
import json
import os

import numpy as np
import pytest
import torch
from transformers import AutoModel

from univigu_hf import UniFlowScheduler, UniViGUModel, UniViGUPipeline
from univigu_hf.testing import build_tiny_pipelines, build_tiny_univigu, make_inputs


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_the_call_shows_every_text_to_video_parameter():
    parameters = inspect.signature(UniViGUPipeline.__call__).parameters
    wan_call = {"prompt", "negative_prompt", "height", "width", "num_frames", "num_inference_steps", "guidance_scale"}
    wan_call |= {"num_videos_per_prompt", "generator", "latents", "prompt_embeds", "negative_prompt_embeds"}
    wan_call |= {"output_type", "return_dict", "callback_on_step_end", "callback_on_step_end_tensor_inputs"}
    wan_call |= {"max_sequence_length"}
    assert wan_call <= set(parameters)
    assert not any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    assert "prompt_embeds" in inspect.signature(UniViGUPipeline.generate_joint).parameters


def test_prompt_embeds_give_the_videos_of_the_prompts(tiny_pipe):
    common = dict(use_text_stream=False, guidance_scale=5.0, num_videos_per_prompt=2, output_type="np")
    prompts, negative = ["a red circle", "a blue square"], ["gray", "black"]
    expected = tiny_pipe(prompt=prompts, negative_prompt=negative, generator=seeded(3), **common).frames
    with torch.no_grad():  # as in the pipeline (the text encoder computes differently with autograd on)
        embeds, negative_embeds = tiny_pipe.encode_prompt(
            prompts, negative, do_classifier_free_guidance=True, num_videos_per_prompt=1, max_sequence_length=512
        )
    got = tiny_pipe(prompt_embeds=embeds, negative_prompt_embeds=negative_embeds, generator=seeded(3), **common).frames
    assert np.array_equal(got, expected)
    joint = tiny_pipe.generate_joint(prompt_embeds=embeds, generator=seeded(3), num_inference_steps=2)
    assert len(joint.text) == 2 and joint.frames.shape[0] == 2


def test_variant_and_shards_reach_the_transformer(tmp_path, tiny_pipe):
    tiny_pipe.save_pretrained(tmp_path, variant="fp16", max_shard_size="20KB")
    transformer = sorted(os.listdir(tmp_path / "transformer"))
    assert "model.safetensors.index.fp16.json" in transformer
    assert sum(name.endswith(".safetensors") for name in transformer) > 1
    assert all(".fp16" in name for name in transformer if name.endswith(".safetensors"))
    # The transformers side of the folder names the same variant, and both libraries load it.
    root_index = json.loads((tmp_path / "model.safetensors.index.fp16.json").read_text())
    assert all(path.startswith("transformer/model.fp16-") for path in root_index["weight_map"].values())
    loaded = UniViGUPipeline.from_pretrained(tmp_path, variant="fp16")
    model = AutoModel.from_pretrained(tmp_path, variant="fp16")
    for candidate in (loaded.transformer, model):
        for name, tensor in tiny_pipe.transformer.state_dict().items():
            assert torch.equal(candidate.state_dict()[name], tensor), name


def test_loading_without_the_transformer_and_vae_runs_encode_prompt(tmp_path, tiny_pipe):
    tiny_pipe.save_pretrained(tmp_path)
    text_only = UniViGUPipeline.from_pretrained(tmp_path, transformer=None, vae=None)
    assert text_only.transformer is None and text_only.vae is None
    with torch.no_grad():
        expected, _ = tiny_pipe.encode_prompt("a red circle", do_classifier_free_guidance=False)
        got, _ = text_only.encode_prompt("a red circle", do_classifier_free_guidance=False)
    assert torch.equal(got, expected)


def test_resize_token_embeddings_resizes_the_text_head_and_reloads(tmp_path):
    model = build_tiny_univigu()
    model.resize_token_embeddings(74)
    assert model.config.text_vocab_size == 74 and model.get_output_embeddings().out_features == 74
    assert model.get_output_embeddings().weight.data_ptr() != model.get_input_embeddings().weight.data_ptr()
    inputs = make_inputs(vocab=74)
    with torch.no_grad():
        logits = model(**inputs).text_logits
    assert logits.shape[-1] == 74
    model.save_pretrained(tmp_path)
    reloaded = UniViGUModel.from_pretrained(tmp_path)
    with torch.no_grad():
        assert torch.equal(reloaded(**inputs).text_logits, logits)


def test_from_config_keeps_the_fp32_modules_as_from_pretrained(tmp_path):
    model = build_tiny_univigu()
    model.save_pretrained(tmp_path)
    for dtype in (torch.float16, torch.bfloat16):
        built = AutoModel.from_config(model.config, dtype=dtype)
        loaded = UniViGUModel.from_pretrained(tmp_path, dtype=dtype)
        loaded_dtypes = {name: p.dtype for name, p in loaded.named_parameters()}
        assert {name: p.dtype for name, p in built.named_parameters()} == loaded_dtypes
        assert loaded_dtypes["scale_shift_table"] == torch.float32 and built.dtype == dtype


def test_a_scheduler_built_without_the_vocabulary_captions(tiny_pipelines):
    pipe = tiny_pipelines[0]
    video = pipe(prompt="a red circle", generator=seeded(1), num_inference_steps=2).frames
    expected = pipe.caption(video, generator=seeded(2)).text
    plain = UniViGUPipeline(
        vae=pipe.vae,
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        transformer=pipe.transformer,
        scheduler=UniFlowScheduler(shift=3.0),
        **{k: v for k, v in pipe.config.items() if k.startswith("default_") or k == "normalize_latents"},
    )
    plain.set_progress_bar_config(disable=True)
    assert plain.scheduler.config.text_vocab_size == pipe.transformer.config.text_vocab_size
    assert plain.caption(video, generator=seeded(2)).text == expected


def test_a_fresh_pipeline_builder_is_deterministic():
    # The tiny builders give the same weights each time (the tests above compare outputs across pipelines).
    first, second = build_tiny_pipelines()[0], build_tiny_pipelines()[0]
    for name, tensor in first.transformer.state_dict().items():
        assert torch.equal(second.transformer.state_dict()[name], tensor)


def test_check_inputs_and_the_call_defaults(tiny_pipe):
    assert tiny_pipe.resolve_size() == (16, 16, 5)  # the pipeline config's defaults
    assert tiny_pipe.resolve_text_length() == tiny_pipe.transformer.config.max_text_length
    tiny_pipe.check_inputs("a red circle", height=32, num_frames=9)  # valid: returns None
    with pytest.raises(ValueError, match="height must be a positive multiple of 16"):
        tiny_pipe.check_inputs("a red circle", height=17)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        tiny_pipe.check_inputs("a red circle", generator="seed")


def test_prompt_with_prompt_embeds_keeps_the_text_stream_without_the_text_encoder(tiny_pipe):
    common = dict(guidance_scale=5.0, num_inference_steps=2, height=16, width=16, num_frames=5, output_type="np")
    prompts, negative = ["a red circle", "a blue square"], ["gray", "black"]
    expected = tiny_pipe(prompt=prompts, negative_prompt=negative, generator=seeded(4), **common).frames
    with torch.no_grad():
        embeds, negative_embeds = tiny_pipe.encode_prompt(
            prompts, negative, do_classifier_free_guidance=True, num_videos_per_prompt=1, max_sequence_length=512
        )
    no_encoder = UniViGUPipeline(**{**tiny_pipe.components, "text_encoder": None})
    no_encoder.set_progress_bar_config(disable=True)
    got = no_encoder(
        prompt=prompts, prompt_embeds=embeds, negative_prompt_embeds=negative_embeds, generator=seeded(4), **common
    ).frames
    assert np.array_equal(got, expected)
    with pytest.raises(ValueError, match="prompt_embeds must have one row per prompt"):
        no_encoder(prompt=prompts[:1], prompt_embeds=embeds, negative_prompt_embeds=negative_embeds, **common)
    with pytest.raises(ValueError, match="prompt and prompt_embeds cannot both be given without the text stream"):
        no_encoder(prompt=prompts, prompt_embeds=embeds, use_text_stream=False, **common)
    with pytest.raises(ValueError, match="prompt is required with use_text_stream=True"):
        no_encoder(prompt_embeds=embeds, negative_prompt_embeds=negative_embeds, **common)
