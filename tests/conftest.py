"""Tiny component builders shared by the tests (2 layers, 2 heads, CPU, fp32)."""

import os


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from diffusers import WanTransformer3DModel  # noqa: E402

from univigu_hf import UniViGUModel  # noqa: E402


TEXT_VOCAB_SIZE = 64


def tiny_wan_config(**overrides) -> dict:
    """diffusers' own tiny Wan test configuration."""
    config = dict(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        eps=1e-6,
        rope_max_seq_len=32,
    )
    config.update(overrides)
    return config


def build_tiny_wan(seed: int = 0, **overrides) -> WanTransformer3DModel:
    torch.manual_seed(seed)
    return WanTransformer3DModel(**tiny_wan_config(**overrides)).eval()


def build_tiny_univigu(seed: int = 0, text_vocab_size: int = TEXT_VOCAB_SIZE, **kwargs) -> UniViGUModel:
    """A tiny UniViGU grown from a tiny Wan, with a non-zero text head so text outputs are informative."""
    wan = build_tiny_wan(seed)
    model = UniViGUModel.from_wan(wan, text_vocab_size=text_vocab_size, **kwargs)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        model.text_proj_out.weight.copy_(torch.randn(model.text_proj_out.weight.shape, generator=generator))
        model.text_proj_out.bias.copy_(torch.randn(model.text_proj_out.bias.shape, generator=generator))
    return model


def make_inputs(batch_size=2, frames=3, height=4, width=6, text_length=5, seed=0, vocab=TEXT_VOCAB_SIZE):
    generator = torch.Generator().manual_seed(seed)
    return dict(
        video_latents=torch.randn(batch_size, 16, frames, height, width, generator=generator),
        text_ids=torch.randint(0, vocab, (batch_size, text_length), generator=generator),
        video_timestep=torch.rand(batch_size, generator=generator) * 1000,
        text_timestep=torch.rand(batch_size, generator=generator) * 1000,
        encoder_hidden_states=torch.randn(batch_size, 7, 32, generator=generator),
    )


@pytest.fixture
def tiny_wan():
    return build_tiny_wan()


@pytest.fixture
def tiny_model():
    return build_tiny_univigu()
