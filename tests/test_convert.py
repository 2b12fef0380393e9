import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed
from transformers import AutoModel

from univigu_hf import UniViGUModel, convert_official_checkpoint
from univigu_hf.convert import load_official_checkpoint, main, map_official_key, to_official_state_dict
from univigu_hf.testing import tiny_wan_config


VOCAB = 40
DIM, HEADS, HEAD_DIM, FFN, TEXT_DIM, LAYERS = 24, 2, 12, 32, 32, 2


def official_state_dict(vocab=VOCAB, text_ffn=FFN, seed=0, fsdp=True):
    """A synthetic checkpoint in the official layout (names and shapes read off the official model code)."""
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=0.2):
        return torch.randn(*shape, generator=generator) * scale

    sd = {
        "vocab_embed.weight": rand(vocab, DIM, scale=1.0),
        "cond_text_embedder.linear_1.weight": rand(DIM, TEXT_DIM),
        "cond_text_embedder.linear_1.bias": rand(DIM),
        "cond_text_embedder.linear_2.weight": rand(DIM, DIM),
        "cond_text_embedder.linear_2.bias": rand(DIM),
        "scale_shift_table_v": rand(1, 2, DIM),
        "scale_shift_table_t": rand(1, 2, DIM),
        "patch_embedding.weight": rand(DIM, 16, 1, 2, 2),
        "patch_embedding.bias": rand(DIM),
        "text_head.norm_final.weight": 1 + rand(DIM),
        "text_head.linear.weight": rand(vocab, DIM),
        "text_head.linear.bias": rand(vocab),
        "video_head.proj_out.weight": rand(16 * 4, DIM),
        "video_head.proj_out.bias": rand(16 * 4),
        "rotary_emb_text.inv_freq": 1.0 / (10000 ** (torch.arange(0, HEAD_DIM, 2).float() / HEAD_DIM)),
    }
    for stream in ("v", "t"):
        sd[f"time_embedding_{stream}.time_embedder.linear_1.weight"] = rand(DIM, 256)
        sd[f"time_embedding_{stream}.time_embedder.linear_1.bias"] = rand(DIM)
        sd[f"time_embedding_{stream}.time_embedder.linear_2.weight"] = rand(DIM, DIM)
        sd[f"time_embedding_{stream}.time_embedder.linear_2.bias"] = rand(DIM)
        sd[f"time_embedding_{stream}.time_proj.weight"] = rand(6 * DIM, DIM)
        sd[f"time_embedding_{stream}.time_proj.bias"] = rand(6 * DIM)
    for i in range(LAYERS):
        block = f"blocks.{i}."
        for attn in ("attn1", "attn2"):
            for proj in ("to_q", "to_k", "to_v", "to_out.0"):
                sd[f"{block}{attn}.{proj}.weight"] = rand(DIM, DIM)
                sd[f"{block}{attn}.{proj}.bias"] = rand(DIM)
            sd[f"{block}{attn}.norm_q.weight"] = 1 + rand(DIM)
            sd[f"{block}{attn}.norm_k.weight"] = 1 + rand(DIM)
        sd[f"{block}norm2.weight"] = 1 + rand(DIM)
        sd[f"{block}norm2.bias"] = rand(DIM)
        for ffn, width in (("ffn", FFN), ("ffn_t", text_ffn)):
            sd[f"{block}{ffn}.net.0.proj.weight"] = rand(width, DIM)
            sd[f"{block}{ffn}.net.0.proj.bias"] = rand(width)
            sd[f"{block}{ffn}.net.2.weight"] = rand(DIM, width)
            sd[f"{block}{ffn}.net.2.bias"] = rand(DIM)
        sd[f"{block}scale_shift_table"] = rand(1, 6, DIM)
    if fsdp:
        sd = {
            (
                f"blocks.{k.split('.')[1]}._fsdp_wrapped_module." + ".".join(k.split(".")[2:])
                if k.startswith("blocks.")
                else f"_fsdp_wrapped_module.{k}"
            ): v
            for k, v in sd.items()
        }
    return sd


# ----- an independent implementation of the official forward, from the equations (plain torch) ---------------------
def _linear(sd, name, x):
    return F.linear(x, sd[f"{name}.weight"], sd.get(f"{name}.bias"))


def _rms(x, weight, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def _sinusoid(t, dim=256):
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _time(sd, prefix, t):
    temb = _linear(
        sd, f"{prefix}.time_embedder.linear_2", F.silu(_linear(sd, f"{prefix}.time_embedder.linear_1", _sinusoid(t)))
    )
    return temb, _linear(sd, f"{prefix}.time_proj", F.silu(temb)).view(t.shape[0], 6, DIM)


def _rope_video(x, cos, sin):
    # Interleaved pairs (2i, 2i+1) rotated as complex numbers.
    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2).contiguous())
    angle = torch.atan2(sin[..., 0::2], cos[..., 0::2])
    return torch.view_as_real(pairs * torch.polar(torch.ones_like(angle), angle)).flatten(-2)


def _rope_text(x):
    length = x.shape[1]
    inv_freq = 1.0 / (10000 ** (torch.arange(0, HEAD_DIM, 2).float() / HEAD_DIM))
    freqs = torch.outer(torch.arange(length).float(), inv_freq)
    cos, sin = torch.cat([freqs, freqs], -1).cos()[None, :, None], torch.cat([freqs, freqs], -1).sin()[None, :, None]
    first, second = x[..., : HEAD_DIM // 2], x[..., HEAD_DIM // 2 :]
    return x * cos + torch.cat([-second, first], -1) * sin


def _attention(sd, name, x, context=None, rope=None, mask=None, num_video=None):
    batch = x.shape[0]
    source = x if context is None else context
    q = _rms(_linear(sd, f"{name}.to_q", x), sd[f"{name}.norm_q.weight"]).view(batch, -1, HEADS, HEAD_DIM)
    k = _rms(_linear(sd, f"{name}.to_k", source), sd[f"{name}.norm_k.weight"]).view(batch, -1, HEADS, HEAD_DIM)
    v = _linear(sd, f"{name}.to_v", source).view(batch, -1, HEADS, HEAD_DIM)
    if rope is not None:
        q = torch.cat([_rope_video(q[:, :num_video], *rope), _rope_text(q[:, num_video:])], 1)
        k = torch.cat([_rope_video(k[:, :num_video], *rope), _rope_text(k[:, num_video:])], 1)
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask)
    return _linear(sd, f"{name}.to_out.0", out.transpose(1, 2).flatten(2))


def official_forward(sd, x_v, x_t, time_v, time_t, cond, text_mask=None):
    batch, _, frames, height, width = x_v.shape
    norm = lambda x, eps=1e-6: F.layer_norm(x, (DIM,), eps=eps)  # noqa: E731
    rope = WanRotaryPosEmbed(HEAD_DIM, (1, 2, 2), 32)(x_v)
    video = F.conv3d(x_v, sd["patch_embedding.weight"], sd["patch_embedding.bias"], stride=(1, 2, 2))
    video = video.flatten(2).transpose(1, 2)
    text = F.embedding(x_t, sd["vocab_embed.weight"])
    num_video = video.shape[1]
    cond = _linear(
        sd, "cond_text_embedder.linear_2", F.gelu(_linear(sd, "cond_text_embedder.linear_1", cond), approximate="tanh")
    )
    temb_v, proj_v = _time(sd, "time_embedding_v", time_v)
    temb_t, proj_t = _time(sd, "time_embedding_t", time_t)
    mask = None
    if text_mask is not None:
        mask = torch.cat([torch.ones(batch, num_video, dtype=torch.bool), text_mask.bool()], 1)[:, None, None, :]
    for i in range(LAYERS):
        b = f"blocks.{i}"
        mods = [(sd[f"{b}.scale_shift_table"] + proj).chunk(6, dim=1) for proj in (proj_v, proj_t)]
        normed = [norm(x) * (1 + m[1]) + m[0] for x, m in zip((video, text), mods)]
        attn = _attention(sd, f"{b}.attn1", torch.cat(normed, 1), rope=rope, mask=mask, num_video=num_video)
        video = video + attn[:, :num_video] * mods[0][2]
        text = text + attn[:, num_video:] * mods[1][2]
        joint = torch.cat([video, text], 1)
        cross_in = F.layer_norm(joint, (DIM,), sd[f"{b}.norm2.weight"], sd[f"{b}.norm2.bias"], eps=1e-6)
        joint = joint + _attention(sd, f"{b}.attn2", cross_in, context=cond)
        video, text = joint[:, :num_video], joint[:, num_video:]
        outs = []
        for x, m, ffn in ((video, mods[0], "ffn"), (text, mods[1], "ffn_t")):
            h = norm(x) * (1 + m[4]) + m[3]
            h = _linear(sd, f"{b}.{ffn}.net.2", F.gelu(_linear(sd, f"{b}.{ffn}.net.0.proj", h), approximate="tanh"))
            outs.append(x + h * m[5])
        video, text = outs
    shift, scale = (sd["scale_shift_table_v"] + temb_v[:, None]).chunk(2, dim=1)
    video = _linear(sd, "video_head.proj_out", norm(video) * (1 + scale) + shift)
    video = video.reshape(batch, frames, height // 2, width // 2, 1, 2, 2, 16).permute(0, 7, 1, 4, 2, 5, 3, 6)
    video = video.flatten(6, 7).flatten(4, 5).flatten(2, 3)
    shift, scale = (sd["scale_shift_table_t"] + temb_t[:, None]).chunk(2, dim=1)
    text = norm(text, eps=1e-5) * sd["text_head.norm_final.weight"] * (1 + scale) + shift
    return video, _linear(sd, "text_head.linear", text)


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(
        video_latents=torch.randn(2, 16, 3, 4, 6, generator=g),
        text_ids=torch.randint(0, VOCAB, (2, 5), generator=g),
        video_timestep=torch.tensor([250.0, 900.0]),
        text_timestep=torch.tensor([1000.0, 0.0]),
        encoder_hidden_states=torch.randn(2, 7, TEXT_DIM, generator=g),
    )


# ----- tests ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("with_mask", [False, True])
def test_converted_checkpoint_reproduces_the_official_forward(with_mask):
    checkpoint = {"model": official_state_dict(), "optimizer": {"state": {}}, "step": 10000}
    model = convert_official_checkpoint(checkpoint, tiny_wan_config(), text_vocab_size=VOCAB)
    inputs = _inputs()
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]) if with_mask else None
    with torch.no_grad():
        ours = model(**inputs, text_attention_mask=mask)
        video, logits = official_forward(
            official_state_dict(fsdp=False),
            inputs["video_latents"],
            inputs["text_ids"],
            inputs["video_timestep"],
            inputs["text_timestep"],
            inputs["encoder_hidden_states"],
            text_mask=mask,
        )
    torch.testing.assert_close(ours.video_velocity, video, atol=1e-4, rtol=1e-4)
    if with_mask:
        valid = mask.bool()
        torch.testing.assert_close(ours.text_logits[valid], logits[valid], atol=1e-4, rtol=1e-4)
    else:
        torch.testing.assert_close(ours.text_logits, logits, atol=1e-4, rtol=1e-4)


def test_every_key_is_consumed_and_round_trips():
    official = official_state_dict(fsdp=False)
    model = convert_official_checkpoint(official_state_dict(), tiny_wan_config())
    ours = model.state_dict()
    mapped = {map_official_key(k) for k in official} - {None}
    assert mapped == set(ours)  # every model tensor came from the checkpoint ...
    assert set(official) - {k for k in official if map_official_key(k)} == {"rotary_emb_text.inv_freq"}  # ... and back
    exported = to_official_state_dict(model)
    assert set(exported) == set(official)
    for key, value in official.items():
        assert torch.equal(exported[key], value), key


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._fsdp_wrapped_module."])
def test_wrapper_prefixes_are_stripped(prefix):
    checkpoint = {prefix + k: v for k, v in official_state_dict(fsdp=False).items()}
    model = convert_official_checkpoint({"model": checkpoint}, tiny_wan_config())
    assert torch.equal(model.text_embedding.weight, official_state_dict(fsdp=False)["vocab_embed.weight"])


def test_mask_source_vocabulary_and_narrow_text_ffn():
    model = convert_official_checkpoint(
        official_state_dict(vocab=VOCAB + 1, text_ffn=8), tiny_wan_config(), text_vocab_size=VOCAB
    )
    assert model.config.text_vocab_size == VOCAB + 1
    assert model.config.mask_token_id == VOCAB
    assert model.config.text_ffn_dim == 8
    assert convert_official_checkpoint(official_state_dict(), tiny_wan_config()).config.text_ffn_dim is None


def test_unknown_and_missing_keys_are_clear_errors():
    unknown = {**official_state_dict(), "blocks.0.some_new_adapter.weight": torch.zeros(2)}
    with pytest.raises(ValueError, match="no UniViGU counterpart.*some_new_adapter"):
        convert_official_checkpoint(unknown, tiny_wan_config())
    model = convert_official_checkpoint(unknown, tiny_wan_config(), strict=False)
    assert isinstance(model, UniViGUModel)
    missing = official_state_dict()
    del missing["blocks.1._fsdp_wrapped_module.attn2.to_k.bias"]
    with pytest.raises(ValueError, match=r"missing keys \['blocks.1.attn2.to_k.bias'\]"):
        convert_official_checkpoint(missing, tiny_wan_config())
    no_text = {k: v for k, v in official_state_dict(fsdp=False).items() if not k.startswith("vocab_embed")}
    with pytest.raises(ValueError, match="not an official Uni-ViGU unified checkpoint"):
        convert_official_checkpoint(no_text, tiny_wan_config())


def test_config_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="does not match the UniViGU model"):
        convert_official_checkpoint(official_state_dict(), tiny_wan_config(num_layers=3))
    with pytest.raises(ValueError, match="text_vocab_size=10 does not match"):
        convert_official_checkpoint(official_state_dict(), tiny_wan_config(), text_vocab_size=10)
    bad_rope = official_state_dict()
    bad_rope["_fsdp_wrapped_module.rotary_emb_text.inv_freq"] = (
        bad_rope["_fsdp_wrapped_module.rotary_emb_text.inv_freq"] * 2
    )
    with pytest.raises(ValueError, match="rotary_emb_text.inv_freq"):
        convert_official_checkpoint(bad_rope, tiny_wan_config())
    with pytest.raises(TypeError, match="wan_config must be"):
        convert_official_checkpoint(official_state_dict(), 3)


def test_another_model_size_fails_before_any_tensor_is_cast(monkeypatch):
    # A 14B checkpoint with a 1.3B config (here: 3 heads instead of 2): the width check names the sizes.
    with pytest.raises(ValueError, match="24 wide but the Wan config describes a transformer of width 36"):
        convert_official_checkpoint(official_state_dict(), tiny_wan_config(num_attention_heads=3))
    # A differently shaped tensor of the same width: every shape is checked on the meta model first.
    wrong = official_state_dict()
    wrong["blocks.0._fsdp_wrapped_module.ffn.net.0.proj.weight"] = torch.zeros(7, 24)
    with pytest.raises(ValueError, match=r"do not have the shapes.*ffn.net.0.proj.weight: \(7, 24\)"):
        convert_official_checkpoint(wrong, tiny_wan_config())
    # The checks come before the dtype cast, so a wrong checkpoint is never copied into memory (issue 37).
    casts = []
    original = torch.Tensor.to
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: casts.append(a) or original(self, *a, **k))
    missing = official_state_dict()
    del missing["blocks.1._fsdp_wrapped_module.attn2.to_k.bias"]
    with pytest.raises(ValueError, match="missing keys"):
        convert_official_checkpoint(missing, tiny_wan_config(), torch_dtype=torch.bfloat16)
    assert torch.bfloat16 not in [arg for args in casts for arg in args]


class _NotWeights:
    pass


def test_pickles_that_are_not_weights_only_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": official_state_dict(), "extra": _NotWeights()}, path)
    with pytest.raises(ValueError, match="not a weights-only file"):
        load_official_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        load_official_checkpoint(tmp_path / "missing.pth")


def test_command_line_writes_safetensors_loadable_with_automodel(tmp_path):
    checkpoint = tmp_path / "step-00010000.pth"
    torch.save({"model": official_state_dict(), "optimizer": {}, "step": 10000}, checkpoint)
    wan_dir = tmp_path / "Wan-tiny" / "transformer"
    wan_dir.mkdir(parents=True)
    from diffusers import WanTransformer3DModel

    WanTransformer3DModel(**tiny_wan_config()).save_config(wan_dir)
    output = tmp_path / "converted"
    assert main(["--checkpoint", str(checkpoint), "--wan-config", str(wan_dir.parent), "--output", str(output)]) == 0
    assert sorted(os.listdir(output)) == ["config.json", "model.safetensors"]
    loaded = AutoModel.from_pretrained(output)
    assert torch.equal(loaded.text_embedding.weight, official_state_dict(fsdp=False)["vocab_embed.weight"])
    # Shards, as save_pretrained writes them.
    sharded = tmp_path / "sharded"
    argv = ["--checkpoint", str(checkpoint), "--wan-config", str(wan_dir.parent), "--output", str(sharded)]
    assert main([*argv, "--max-shard-size", "50KB"]) == 0
    assert "model.safetensors.index.json" in os.listdir(sharded) and len(list(sharded.glob("*.safetensors"))) > 1
    reloaded = AutoModel.from_pretrained(sharded)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), reloaded.state_dict().values()))
    # And as a module entry point, bf16.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "univigu_hf.convert",
            "--checkpoint",
            str(checkpoint),
            "--wan-config",
            str(wan_dir / "config.json"),
            "--output",
            str(tmp_path / "bf16"),
            "--dtype",
            "bf16",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    bf16 = AutoModel.from_pretrained(tmp_path / "bf16")
    assert bf16.blocks[0].attn1.to_q.weight.dtype == torch.bfloat16
    assert bf16.blocks[0].scale_shift_table.dtype == torch.float32
