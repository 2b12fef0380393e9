"""Tiny components for tests, benchmarks and recipes: a tiny Wan/UniViGU transformer, tokenizer, text encoder, VAE,
pipelines, a video folder and the model tester of the libraries' common tests, all built locally in a second (nothing
is downloaded).

The builders sit at the package's top level, above `models/`, `schedulers/` and `pipelines/`, because they build
from all three; `utils/` stays below everything (see docs/architecture.md).
"""

import json
import os

import numpy as np
import torch
from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel
from diffusers.utils import export_to_video
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

from .models import UniViGUConfig, UniViGUModel
from .pipelines import UniViGUPipeline


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
    _randomize_text_head(model, seed + 1)
    return model


def _randomize_text_head(model: UniViGUModel, seed: int) -> None:
    """Draws the text head (`from_wan` leaves it zero) from N(0, 1), so captions are not all the same token."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.text_proj_out.weight.copy_(torch.randn(model.text_proj_out.weight.shape, generator=generator))
        model.text_proj_out.bias.copy_(torch.randn(model.text_proj_out.bias.shape, generator=generator))


def make_inputs(batch_size=2, frames=3, height=4, width=6, text_length=5, seed=0, vocab=TEXT_VOCAB_SIZE):
    generator = torch.Generator().manual_seed(seed)
    return dict(
        video_latents=torch.randn(batch_size, 16, frames, height, width, generator=generator),
        text_ids=torch.randint(0, vocab, (batch_size, text_length), generator=generator),
        video_timestep=torch.rand(batch_size, generator=generator) * 1000,
        text_timestep=torch.rand(batch_size, generator=generator) * 1000,
        encoder_hidden_states=torch.randn(batch_size, 7, 32, generator=generator),
    )


# ----- tiny pipeline components --------------------------------------------------------------------------------------
WORDS = (
    "a the small large red green blue yellow circle square triangle moving left right up down on black gray "
    "background slowly quickly from top bottom center it starts"
).split()
# Tiny video size: multiples of VAE factor 8 x patch 2, 4k+1 frames.
TINY_VIDEO = {"height": 16, "width": 16, "num_frames": 5}


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A T5-like word-level tokenizer: <pad>=0, </s>=1 appended to every sequence, <unk>=2."""
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=512
    )


def build_tiny_text_encoder(seed: int = 0) -> UMT5EncoderModel:
    torch.manual_seed(seed)
    config = UMT5Config(
        vocab_size=len(WORDS) + 3,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
    )
    return UMT5EncoderModel(config).eval()


def build_tiny_vae(seed: int = 0) -> AutoencoderKLWan:
    torch.manual_seed(seed)
    return AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    ).eval()


def build_tiny_pipelines(seed: int = 0, shift: float = 3.0, **pipeline_kwargs):
    """A tiny UniViGUPipeline and the diffusers WanPipeline it was grown from (shared VAE/encoder/tokenizer)."""
    tokenizer = build_tiny_tokenizer()
    wan = WanPipeline(
        tokenizer=tokenizer,
        text_encoder=build_tiny_text_encoder(seed),
        vae=build_tiny_vae(seed),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=shift),
        transformer=build_tiny_wan(seed),
    )
    defaults = dict(
        default_height=16,
        default_width=16,
        default_num_frames=5,
        default_num_inference_steps=4,
        default_guidance_scale=5.0,
        max_text_length=12,
    )
    defaults.update(pipeline_kwargs)
    unified = UniViGUPipeline.from_wan(wan, **defaults)
    _randomize_text_head(unified.transformer, seed + 1)
    for pipe in (wan, unified):
        pipe.set_progress_bar_config(disable=True)
    return unified, wan


# ----- tiny video dataset (the `datasets` folder convention) -----------------------------------------------------------
SHAPE_COLORS = {"red": (1.0, 0.1, 0.1), "green": (0.1, 1.0, 0.1), "blue": (0.1, 0.1, 1.0), "yellow": (1.0, 1.0, 0.1)}


def build_tiny_video_folder(root, num_videos: int = 6, num_frames: int = 5, size: int = 16, seed: int = 0) -> str:
    """Writes `num_videos` mp4 clips of a colored square moving left/right and a `metadata.jsonl` with `file_name`,
    `prompt` and `caption` columns. Returns the folder."""
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    rows = []
    colors = list(SHAPE_COLORS)
    for index in range(num_videos):
        color = colors[index % len(colors)]
        direction = "left" if index % 2 else "right"
        frames = np.zeros((num_frames, size, size, 3), dtype=np.float32)
        for f in range(num_frames):
            x = (size // 2 + (f - num_frames // 2) * (-2 if direction == "left" else 2)) % (size - 4)
            y = int(rng.integers(2, size - 6))
            frames[f, y : y + 4, x : x + 4] = SHAPE_COLORS[color]
        name = f"clip_{index:03d}.mp4"
        export_to_video(list(frames), os.path.join(root, name), fps=8, macro_block_size=1)
        prompt = f"a small {color} square moving {direction}"
        caption = f"a small {color} square moving {direction} on a black background from the center"
        rows.append({"file_name": name, "prompt": prompt, "caption": caption})
    with open(os.path.join(root, "metadata.jsonl"), "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return str(root)


class UniViGUModelTester:
    """
    The tiny configuration and inputs of the model tests, in the shape of transformers' `ModelTester` classes
    (`get_config`, `prepare_config_and_inputs_for_common`), so the same tester drives our own model tests and the
    libraries' common test mixins.

    Args:
        parent: the `unittest.TestCase` (or any object) running the checks.
        batch_size, num_frames, height, width: the video latents' shape (`height`/`width` multiples of the patch).
        text_length: caption tokens per sample.
        condition_length: prompt-embedding tokens per sample.
    """

    def __init__(
        self,
        parent=None,
        batch_size: int = 2,
        num_frames: int = 2,
        height: int = 4,
        width: int = 4,
        text_length: int = 5,
        condition_length: int = 3,
    ):
        self.parent = parent
        self.batch_size = batch_size
        self.num_frames = num_frames
        self.height = height
        self.width = width
        self.text_length = text_length
        self.condition_length = condition_length
        config = self.get_config()
        p_t, p_h, p_w = config.patch_size
        self.num_video_tokens = (num_frames // p_t) * (height // p_h) * (width // p_w)
        # The joint `[video; text]` sequence the blocks see.
        self.seq_length = self.num_video_tokens + text_length
        self.vocab_size = config.text_vocab_size
        self.hidden_size = config.hidden_size
        self.num_hidden_layers = config.num_layers
        self.num_attention_heads = config.num_attention_heads
        self.is_training = True

    def get_config(self, **overrides) -> UniViGUConfig:
        """The tiny Wan configuration grown with a 64-token text stream."""
        values = dict(tiny_wan_config(), text_vocab_size=TEXT_VOCAB_SIZE, max_text_length=16)
        values.update(overrides)
        return UniViGUConfig(**values)

    def prepare_config_and_inputs_for_common(self, seed: int = 0) -> tuple[UniViGUConfig, dict]:
        """The config and one joint forward's inputs (video latents, caption ids, both timesteps, prompt)."""
        config = self.get_config()
        generator = torch.Generator().manual_seed(seed)
        inputs = dict(
            video_latents=torch.randn(
                self.batch_size, config.in_channels, self.num_frames, self.height, self.width, generator=generator
            ),
            text_ids=torch.randint(
                0, config.text_vocab_size, (self.batch_size, self.text_length), generator=generator
            ),
            video_timestep=torch.rand(self.batch_size, generator=generator) * 1000,
            text_timestep=torch.rand(self.batch_size, generator=generator) * 1000,
            encoder_hidden_states=torch.randn(
                self.batch_size, self.condition_length, config.text_dim, generator=generator
            ),
        )
        return config, inputs
