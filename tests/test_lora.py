"""Wan LoRAs on `UniViGUPipeline` (diffusers' `WanLoraLoaderMixin`): the same file gives the same video as in
`WanPipeline` in every key format diffusers converts, the adapter API (fuse, unload, weights, disable, delete) behaves
as diffusers', bad files fail naming the file or key, and our PEFT training adapters load and save as Wan LoRAs."""

import argparse
import re
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from univigu_hf import UniViGUPipeline
from univigu_hf.testing import build_tiny_pipelines


PROMPT = "a small red square moving left"
VIDEO = dict(height=16, width=16, num_frames=5, num_inference_steps=2, guidance_scale=5.0)
WAN_LINEAR = re.compile(r"blocks\.\d+\.(attn[12]\.(to_q|to_k|to_v|to_out\.0)|ffn\.net\.(0\.proj|2))$")
ORIGINAL_NAMES = {"attn1": "self_attn", "attn2": "cross_attn", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "o"}
RANK, ALPHA = 4, 8.0


def seeded(seed: int = 3) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def wan_video(pipe, output_type="latent"):
    return pipe(prompt=PROMPT, generator=seeded(), output_type=output_type, **VIDEO).frames


def our_video(pipe, output_type="latent"):
    return pipe.generate_video(
        PROMPT, use_text_stream=False, generator=seeded(), output_type=output_type, **VIDEO
    ).frames


def random_lora(
    transformer, seed: int = 0, scale: float = 0.2, width_factor: int = 1, rank: int = RANK, modules=WAN_LINEAR
) -> dict:
    """A diffusers-format LoRA (`transformer.<module>.lora_A/B.weight`) for every linear `modules` matches (by
    default every attention and FFN linear of Wan)."""
    generator = torch.Generator().manual_seed(seed)
    state_dict = {}
    for name, module in transformer.named_modules():
        if modules.fullmatch(name):
            down = torch.randn(rank, module.in_features * width_factor, generator=generator) * scale
            up = torch.randn(module.out_features * width_factor, rank, generator=generator) * scale
            state_dict[f"transformer.{name}.lora_A.weight"] = down
            state_dict[f"transformer.{name}.lora_B.weight"] = up
    return state_dict


def original_name(module: str) -> str:
    """`blocks.0.attn1.to_q` -> `blocks.0.self_attn.q`; `blocks.0.ffn.net.0.proj` -> `blocks.0.ffn.0` (Wan's names)."""
    block, rest = module.split(".", 2)[1], module.split(".", 2)[2]
    if rest.startswith("ffn."):
        return f"blocks.{block}.ffn.{'0' if rest == 'ffn.net.0.proj' else '2'}"
    attention, linear = rest.split(".", 1)
    return f"blocks.{block}.{ORIGINAL_NAMES[attention]}.{ORIGINAL_NAMES[linear]}"


def in_format(state_dict: dict, fmt: str) -> dict:
    """The same LoRA written the way other trainers write it."""
    if fmt == "diffusers":
        return dict(state_dict)
    converted = {}
    for key, value in state_dict.items():
        module, kind = key.removeprefix("transformer.").rsplit(".", 2)[0], key.rsplit(".", 2)[1]
        if fmt == "original":  # original Wan / ComfyUI: `diffusion_model.blocks.0.self_attn.q.lora_A.weight`
            converted[f"diffusion_model.{original_name(module)}.{kind}.weight"] = value
            continue
        down_up = "lora_down" if kind == "lora_A" else "lora_up"
        if fmt in ("original_alpha", "lightx2v"):  # `lora_down`/`lora_up` + `.alpha` (+ `.diff_b` for lightx2v)
            name = f"diffusion_model.{original_name(module)}"
        elif fmt == "kohya":  # kohya / musubi-tuner: `lora_unet_blocks_0_self_attn_q.lora_down.weight` + `.alpha`
            name = "lora_unet_" + original_name(module).replace(".", "_")
        converted[f"{name}.{down_up}.weight"] = value
        converted[f"{name}.alpha"] = torch.tensor(ALPHA)
        if fmt == "lightx2v" and kind == "lora_B":
            converted[f"{name}.diff_b"] = torch.randn(value.shape[0], generator=torch.Generator().manual_seed(1)) * 0.1
    return converted


@pytest.fixture
def pipelines():
    return build_tiny_pipelines()


# ---------------------------------------------------------------------------------------------------------------------
# Parity with WanPipeline
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["diffusers", "original", "original_alpha", "kohya", "lightx2v"])
def test_a_wan_lora_gives_the_video_it_gives_in_wan_pipeline(tmp_path, pipelines, fmt):
    unified, wan = pipelines
    before = our_video(unified)
    path = tmp_path / "lora.safetensors"
    save_file(in_format(random_lora(wan.transformer), fmt), path)
    wan.load_lora_weights(path, adapter_name="style")
    unified.load_lora_weights(path, adapter_name="style")
    assert unified.get_list_adapters() == {"transformer": ["style"]}
    assert unified.get_active_adapters() == ["style"]
    latents = our_video(unified)
    assert (latents - before).abs().max() > 1e-3  # the LoRA acts
    torch.testing.assert_close(latents, wan_video(wan), atol=1e-6, rtol=0)
    assert np.abs(our_video(unified, "np") - wan_video(wan, "np")).max() <= 1e-6
    # The text stream's own modules are untouched; the joint call runs with the LoRA.
    assert not any("lora" in name for name, _ in unified.transformer.named_modules() if "text_" in name)
    joint = unified.generate_joint(PROMPT, generator=seeded(), **VIDEO)
    assert joint.frames.shape[0] == 1 and len(joint.text) == 1


def test_full_weight_diff_keys_load_as_in_wan_pipeline_and_are_warned_about(tmp_path, pipelines, caplog):
    import logging

    unified, wan = pipelines
    state_dict = in_format(random_lora(wan.transformer), "lightx2v")
    weight = wan.transformer.blocks[0].attn1.to_q.weight
    state_dict["diffusion_model.blocks.0.self_attn.q.diff"] = torch.randn(weight.shape, generator=seeded()) * 0.1
    state_dict["diffusion_model.blocks.0.norm3.diff"] = torch.zeros(weight.shape[0])  # zeros, as published
    path = tmp_path / "lightx2v.safetensors"
    save_file(state_dict, path)
    wan.load_lora_weights(path)
    with caplog.at_level(logging.WARNING, logger="univigu_hf"):
        unified.load_lora_weights(path)
    torch.testing.assert_close(our_video(unified), wan_video(wan), atol=1e-6, rtol=0)
    assert f"1 full-weight `.diff` key(s) of '{path}' are not applied" in caplog.text
    assert "blocks.0.self_attn.q.diff" in caplog.text and "norm3" not in caplog.text


TEXT_EXPERTS = re.compile(r"blocks\.\d+\.text_ffn\.net\.(0\.proj|2)|text_proj_out")


def test_a_lora_for_the_text_experts_changes_captions_only(pipelines):
    unified, _ = pipelines
    video = torch.rand(5, 3, 16, 16)

    def caption_ids():
        final = {}

        def keep(pipe, step, timestep, tensors):
            final["text_ids"] = tensors["text_ids"].clone()
            return tensors

        unified.caption(video, num_inference_steps=2, generator=seeded(), callback_on_step_end=keep)
        return final["text_ids"]

    before_video, before_ids = our_video(unified), caption_ids()
    unified.load_lora_weights(
        random_lora(unified.transformer, scale=2.0, modules=TEXT_EXPERTS), adapter_name="captions"
    )
    adapted = {name for name, module in unified.transformer.named_modules() if hasattr(module, "lora_A")}
    assert adapted and all("text_" in name for name in adapted)
    assert torch.equal(our_video(unified), before_video)  # text stream off: the video path is Wan's, untouched
    assert not torch.equal(caption_ids(), before_ids)


def test_fuse_unload_weights_disable_and_delete_behave_as_in_wan_pipeline(pipelines):
    unified, wan = pipelines
    before = our_video(unified)
    first, second = random_lora(wan.transformer, seed=0), random_lora(wan.transformer, seed=1)
    for pipe in (unified, wan):
        pipe.load_lora_weights(first, adapter_name="a")
        pipe.load_lora_weights(second, adapter_name="b")
    both = our_video(unified)
    torch.testing.assert_close(both, wan_video(wan), atol=1e-6, rtol=0)

    for pipe in (unified, wan):
        pipe.set_adapters(["a", "b"], adapter_weights=[0.5, 0.75])
    weighted = our_video(unified)
    assert (weighted - both).abs().max() > 1e-4
    torch.testing.assert_close(weighted, wan_video(wan), atol=1e-6, rtol=0)
    assert unified.get_active_adapters() == wan.get_active_adapters()

    for pipe in (unified, wan):
        pipe.disable_lora()
    assert torch.equal(our_video(unified), before)
    for pipe in (unified, wan):
        pipe.enable_lora()
    torch.testing.assert_close(our_video(unified), weighted, atol=0, rtol=0)

    for pipe in (unified, wan):
        pipe.delete_adapters("b")
        pipe.set_adapters("a", 0.5)
    assert unified.get_list_adapters() == wan.get_list_adapters() == {"transformer": ["a"]}
    only_a = our_video(unified)
    torch.testing.assert_close(only_a, wan_video(wan), atol=1e-6, rtol=0)

    for pipe in (unified, wan):
        pipe.fuse_lora(lora_scale=1.0)
    fused = our_video(unified)
    torch.testing.assert_close(fused, only_a, atol=1e-5, rtol=0)
    torch.testing.assert_close(fused, wan_video(wan), atol=1e-6, rtol=0)
    unified.unfuse_lora()
    torch.testing.assert_close(our_video(unified), only_a, atol=1e-5, rtol=0)

    unified.unload_lora_weights()
    assert unified.get_list_adapters() == {}
    assert not hasattr(unified.transformer, "peft_config")
    torch.testing.assert_close(our_video(unified), before, atol=1e-5, rtol=0)


def test_unload_without_fusing_restores_the_outputs_exactly(pipelines):
    unified, wan = pipelines
    before = our_video(unified)
    joint_before = unified.generate_joint(PROMPT, generator=seeded(), output_type="latent", **VIDEO)
    unified.load_lora_weights(random_lora(wan.transformer))
    assert unified.get_list_adapters() == {"transformer": ["default_0"]}
    assert (our_video(unified) - before).abs().max() > 1e-3
    unified.unload_lora_weights()
    assert torch.equal(our_video(unified), before)
    joint_after = unified.generate_joint(PROMPT, generator=seeded(), output_type="latent", **VIDEO)
    assert torch.equal(joint_after.frames, joint_before.frames) and joint_after.text == joint_before.text


# ---------------------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------------------
def test_a_lora_for_a_wider_model_fails_naming_the_key_and_leaves_the_model_as_it_was(pipelines):
    unified, wan = pipelines
    before = our_video(unified)
    with pytest.raises(RuntimeError, match=r"size mismatch for blocks\.0\.attn1\.to_q\.lora_A"):
        unified.load_lora_weights(random_lora(wan.transformer, width_factor=2), adapter_name="wide")
    assert torch.equal(our_video(unified), before)
    assert "wide" not in unified.get_list_adapters().get("transformer", [])


FLUX_LORAS = {
    "diffusers": {"transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight": torch.ones(4, 24)},
    "kohya": {
        "lora_unet_single_blocks_0_linear1.lora_down.weight": torch.ones(4, 24),
        "lora_unet_single_blocks_0_linear1.lora_up.weight": torch.ones(24, 4),
        "lora_unet_single_blocks_0_linear1.alpha": torch.tensor(4.0),
    },
    "original": {
        "diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight": torch.ones(4, 24),
        "diffusion_model.double_blocks.0.img_attn.qkv.lora_B.weight": torch.ones(72, 4),
    },
    "unprefixed": {"single_blocks.0.linear1.lora_A.weight": torch.ones(4, 24)},
}


@pytest.mark.parametrize("fmt,message", [
    ("diffusers", r"single_transformer_blocks\.0\.attn\.to_q.*not found"),
    ("kohya", r"Cannot read the LoRA state dict as a Wan LoRA.*lora_unet_single_blocks_0_linear1"),
    ("original", r"Cannot read the LoRA state dict as a Wan LoRA.*double_blocks\.0\.img_attn\.qkv"),
    ("unprefixed", r"No key of the LoRA state dict is a LoRA key of the Wan transformer.*single_blocks\.0\.linear1"),
])  # fmt: skip
def test_a_lora_for_another_model_fails_naming_its_keys(pipelines, fmt, message):
    unified, _ = pipelines
    state_dict = dict(FLUX_LORAS[fmt])
    if fmt == "diffusers":
        state_dict["transformer.single_transformer_blocks.0.attn.to_q.lora_B.weight"] = torch.ones(24, 4)
    with pytest.raises((ValueError, RuntimeError), match=message):
        unified.load_lora_weights(state_dict)


def test_keys_that_match_no_module_are_reported_not_dropped_silently(pipelines):
    unified, wan = pipelines
    state_dict = random_lora(wan.transformer)
    state_dict["transformer.blocks.0.attn1.to_qq.lora_A.weight"] = torch.ones(RANK, 24)
    state_dict["transformer.blocks.0.attn1.to_qq.lora_B.weight"] = torch.ones(24, RANK)
    with mock.patch("diffusers.utils.peft_utils.logger.warning") as warning:
        unified.load_lora_weights(state_dict, adapter_name="typo")
    assert "blocks.0.attn1.to_qq.lora_A.weight" in str(warning.call_args)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_corrupted_file_fails_naming_it(tmp_path, pipelines, damage):
    unified, wan = pipelines
    path = tmp_path / "lora.safetensors"
    save_file(random_lora(wan.transformer), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x10" + b"\x00" * 7 + b"{not json")
    with pytest.raises(OSError, match=re.escape(repr(str(path))) + ".*truncated or corrupted"):
        unified.load_lora_weights(path)
    for folder_call in (dict(), dict(weight_name="lora.safetensors")):
        with pytest.raises(OSError, match=re.escape(repr(str(path))) + ".*truncated or corrupted"):
            unified.load_lora_weights(tmp_path, **folder_call)


def test_an_adapter_name_used_twice_fails(pipelines):
    unified, wan = pipelines
    unified.load_lora_weights(random_lora(wan.transformer), adapter_name="style")
    with pytest.raises(ValueError, match="Adapter name style already in use"):
        unified.load_lora_weights(random_lora(wan.transformer, seed=1), adapter_name="style")
    assert unified.get_list_adapters() == {"transformer": ["style"]}


# ---------------------------------------------------------------------------------------------------------------------
# Our PEFT training adapters, and saving for WanPipeline
# ---------------------------------------------------------------------------------------------------------------------
def save_training_adapter(folder) -> None:
    """An adapter as `train_recall.py --use_peft --lora_r 4 --lora_alpha 8` saves it (PEFT's `save_pretrained`)."""
    from peft import LoraConfig, get_peft_model

    from univigu_hf.training.script import DEFAULT_LORA_TARGETS

    torch.manual_seed(7)
    config = LoraConfig(
        r=RANK, lora_alpha=ALPHA, lora_dropout=0.05, target_modules=DEFAULT_LORA_TARGETS, init_lora_weights=False
    )
    get_peft_model(build_tiny_pipelines()[0].transformer, config).save_pretrained(folder)


def test_a_training_adapter_loads_as_transformers_loads_it(tmp_path, pipelines):
    unified, _ = pipelines
    save_training_adapter(tmp_path / "run" / "adapter")
    reference = build_tiny_pipelines()[0]
    reference.transformer.load_adapter(str(tmp_path / "run" / "adapter"))  # transformers/PEFT
    before = unified.generate_video(PROMPT, generator=seeded(), output_type="latent", **VIDEO).frames
    for index, path in enumerate((tmp_path / "run", tmp_path / "run" / "adapter")):  # the run folder or the adapter
        unified.load_lora_weights(path, adapter_name=f"trained{index}")
        unified.set_adapters(f"trained{index}")
        got = unified.generate_video(PROMPT, generator=seeded(), output_type="latent", **VIDEO).frames
        expected = reference.generate_video(PROMPT, generator=seeded(), output_type="latent", **VIDEO).frames
        assert (got - before).abs().max() > 1e-3  # alpha / r = 2 kept: equal to the transformers-loaded adapter
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    joint = unified.generate_joint(PROMPT, generator=seeded(), **VIDEO)
    assert joint.text == reference.generate_joint(PROMPT, generator=seeded(), **VIDEO).text
    with pytest.raises(ValueError, match="PEFT adapter file: pass its folder"):
        unified.load_lora_weights(tmp_path / "run" / "adapter" / "adapter_model.safetensors")


def test_the_output_folder_of_a_lora_training_run_loads_with_load_lora_weights(tmp_path):
    from univigu_hf.testing import build_tiny_video_folder
    from univigu_hf.training.script import run

    unified, _ = build_tiny_pipelines()
    unified.save_pretrained(tmp_path / "unified")
    build_tiny_video_folder(tmp_path / "videos")
    config = Path(__file__).resolve().parents[1] / "examples" / "configs" / "tiny_recall.yaml"
    argv = ["--config", str(config), "--dataset_name", str(tmp_path / "videos"), "--output_dir", str(tmp_path / "run")]
    argv += ["--prepared_data_dir", str(tmp_path / "prepared"), "--init_from", str(tmp_path / "unified")]
    run("recall", argv + ["--use_peft", "--lora_r", "4", "--lora_alpha", "8", "--learning_rate", "0.05"])
    base = UniViGUPipeline.from_pretrained(tmp_path / "unified")
    merged = UniViGUPipeline.from_pretrained(tmp_path / "run")  # the run also saves the merged transformer
    before = base.generate_video(PROMPT, generator=seeded(), output_type="latent", **VIDEO).frames
    base.load_lora_weights(tmp_path / "run")
    got = base.generate_video(PROMPT, generator=seeded(), output_type="latent", **VIDEO).frames
    assert (got - before).abs().max() > 1e-4
    expected = merged.generate_video(PROMPT, generator=seeded(), output_type="latent", **VIDEO).frames
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_saved_lora_weights_load_into_wan_pipeline(tmp_path, pipelines):
    from peft.utils import get_peft_model_state_dict

    unified, wan = pipelines
    save_training_adapter(tmp_path / "adapter")
    unified.load_lora_weights(tmp_path / "adapter", adapter_name="trained")
    UniViGUPipeline.save_lora_weights(
        tmp_path / "out",
        transformer_lora_layers=get_peft_model_state_dict(unified.transformer, adapter_name="trained"),
        transformer_lora_adapter_metadata=unified.transformer.peft_config["trained"].to_dict(),
    )
    wan.load_lora_weights(tmp_path / "out")
    torch.testing.assert_close(wan_video(wan), our_video(unified), atol=1e-6, rtol=0)
    # and back: the saved file loads into a fresh UniViGUPipeline too
    fresh = build_tiny_pipelines()[0]
    fresh.load_lora_weights(tmp_path / "out")
    torch.testing.assert_close(our_video(fresh), our_video(unified), atol=0, rtol=0)


def test_the_model_has_diffusers_lora_methods_next_to_transformers_ones(pipelines):
    unified, wan = pipelines
    transformer = unified.transformer
    transformer.load_lora_adapter(random_lora(wan.transformer), adapter_name="a")  # diffusers' model-level loader
    assert transformer.active_adapters() == ["a"]  # transformers' method, same adapters
    transformer.set_adapters("a", 0.0)
    assert torch.equal(our_video(unified), our_video(build_tiny_pipelines()[0]))
    transformer.disable_adapters()  # transformers' name still works
    transformer.enable_adapters()
    transformer.unload_lora()
    assert not any("lora" in name for name, _ in transformer.named_modules())


# ---------------------------------------------------------------------------------------------------------------------
# Few-step (distilled) LoRAs: guidance_scale=1.0 means one transformer call per step
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["video", "joint"])
@pytest.mark.parametrize("guidance_scale,calls_per_step", [(1.0, 1), (5.0, 2)])
def test_guidance_scale_one_runs_the_transformer_once_per_step(pipelines, mode, guidance_scale, calls_per_step):
    unified, _ = pipelines
    calls = []
    handle = unified.transformer.register_forward_pre_hook(lambda *_: calls.append(1))
    settings = dict(VIDEO, num_inference_steps=3, guidance_scale=guidance_scale)
    if mode == "video":
        unified.generate_video(PROMPT, generator=seeded(), output_type="latent", **settings)
    else:
        unified.generate_joint(PROMPT, generator=seeded(), output_type="latent", **settings)
    handle.remove()
    assert len(calls) == 3 * calls_per_step


# ---------------------------------------------------------------------------------------------------------------------
# Pickled LoRA files (.ckpt, .pt, .bin): read weights-only, as diffusers does, and a refusal that says why
# ---------------------------------------------------------------------------------------------------------------------
class _RunsCode:
    def __reduce__(self):
        return (exec, ("raise SystemExit('the pickle ran code')",))


@pytest.mark.parametrize("name", ["lora.ckpt", "lora.pt", "pytorch_lora_weights.bin"])
def test_a_weights_only_pickle_loads_like_its_safetensors(tmp_path, pipelines, name):
    unified, wan = pipelines
    state_dict = random_lora(wan.transformer)
    torch.save(state_dict, tmp_path / name)
    unified.load_lora_weights(tmp_path / name, adapter_name="pickled")
    pickled = our_video(unified)
    unified.unload_lora_weights()
    unified.load_lora_weights(state_dict, adapter_name="dict")
    torch.testing.assert_close(pickled, our_video(unified), atol=0, rtol=0)


@pytest.mark.parametrize("name", ["lora.ckpt", "lora.pt", "pytorch_lora_weights.bin"])
def test_a_pickle_that_is_not_weights_only_is_refused_naming_the_file_and_the_opt_in(tmp_path, pipelines, name):
    unified, wan = pipelines
    path = tmp_path / name
    torch.save({**random_lora(wan.transformer), "extra": _RunsCode()}, path)
    calls = [dict(pretrained_model_name_or_path_or_dict=path), dict(pretrained_model_name_or_path_or_dict=tmp_path)]
    calls.append(dict(pretrained_model_name_or_path_or_dict=tmp_path, weight_name=name))
    for call in calls if name.endswith(".bin") else [calls[0], calls[2]]:
        with pytest.raises(OSError, match=re.escape(repr(str(path))) + ".*not weights-only") as error:
            unified.load_lora_weights(**call)
        assert "weights_only=False" in str(error.value) and "load_lora_weights(torch.load(" in str(error.value)
    assert unified.get_list_adapters() == {}


def test_the_opt_in_for_a_trusted_pickle_is_to_unpickle_it_and_pass_the_state_dict(tmp_path, pipelines):
    unified, wan = pipelines
    state_dict = random_lora(wan.transformer)
    torch.save({**state_dict, "args": argparse.Namespace(rank=RANK)}, tmp_path / "trusted.ckpt")
    with pytest.raises(OSError, match="not weights-only"):
        unified.load_lora_weights(tmp_path / "trusted.ckpt")
    trusted = torch.load(tmp_path / "trusted.ckpt", weights_only=False)
    unified.load_lora_weights({k: v for k, v in trusted.items() if k != "args"}, adapter_name="trusted")
    assert unified.get_list_adapters() == {"transformer": ["trusted"]}


# ---------------------------------------------------------------------------------------------------------------------
# Hotswap (diffusers' `hotswap=True`: new weights into an adapter in place, e.g. under torch.compile)
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("enable_first", [False, True])
def test_hotswap_replaces_an_adapter_in_place_as_a_fresh_load_would(pipelines, enable_first):
    unified, wan = pipelines
    first, second = random_lora(wan.transformer, seed=0), random_lora(wan.transformer, seed=1)
    if enable_first:
        unified.enable_lora_hotswap(target_rank=2 * RANK)  # what one calls before compiling
    unified.load_lora_weights(first, adapter_name="a")
    layer = unified.transformer.blocks[0].attn1.to_q
    before = layer.lora_A["a"]
    unified.load_lora_weights(second, adapter_name="a", hotswap=True)
    assert unified.transformer.blocks[0].attn1.to_q.lora_A["a"] is before  # same module, new weights
    assert unified.get_list_adapters() == {"transformer": ["a"]}
    fresh = build_tiny_pipelines()[0]
    fresh.load_lora_weights(second, adapter_name="a")
    torch.testing.assert_close(our_video(unified), our_video(fresh), atol=1e-6, rtol=0)


def test_hotswap_under_torch_compile_does_not_recompile(pipelines):
    from torch._dynamo.utils import counters

    unified, wan = pipelines
    second = random_lora(wan.transformer, seed=1, rank=2 * RANK)  # another rank: padded to the target rank
    unified.enable_lora_hotswap(target_rank=2 * RANK)
    unified.load_lora_weights(random_lora(wan.transformer, seed=0), adapter_name="a")
    torch._dynamo.reset()
    counters.clear()
    unified.transformer.compile(backend="eager", fullgraph=True)
    try:
        our_video(unified)
        graphs = counters["stats"]["unique_graphs"]
        assert graphs >= 1
        with torch._dynamo.config.patch(error_on_recompile=True):
            unified.load_lora_weights(second, adapter_name="a", hotswap=True)
            swapped = our_video(unified)
        assert counters["stats"]["unique_graphs"] == graphs
    finally:
        torch._dynamo.reset()
    fresh = build_tiny_pipelines()[0]
    fresh.load_lora_weights(second, adapter_name="a")
    torch.testing.assert_close(swapped, our_video(fresh), atol=1e-5, rtol=0)


def test_hotswap_into_an_adapter_that_is_not_loaded_fails_naming_it(pipelines):
    unified, wan = pipelines
    unified.load_lora_weights(random_lora(wan.transformer), adapter_name="a")
    with pytest.raises(ValueError, match="hotswap.*'b'|'b'.*hotswap"):
        unified.load_lora_weights(random_lora(wan.transformer, seed=1), adapter_name="b", hotswap=True)
