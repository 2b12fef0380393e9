"""The embedded default pipeline (`univigu_hf.DEFAULT_MODEL`) and the shipped sample clip: structure, not quality."""

import os

import numpy as np
import pytest
import torch
from transformers import AutoModel

import univigu_hf
from univigu_hf import UniViGUModel, UniViGUPipeline, shapes


MAX_SIZE_BYTES = 25 * 1024 * 1024


@pytest.fixture(scope="module")
def pipe():
    pipe = UniViGUPipeline.from_pretrained(univigu_hf.DEFAULT_MODEL)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def model_files():
    for root, _, names in os.walk(univigu_hf.DEFAULT_MODEL):
        for name in names:
            yield os.path.join(root, name)


def test_default_model_and_sample_video_are_shipped():
    assert os.path.isfile(os.path.join(univigu_hf.DEFAULT_MODEL, "model_index.json"))
    assert os.path.isfile(univigu_hf.SAMPLE_VIDEO)


def test_default_model_is_safetensors_only_and_small():
    files = list(model_files())
    assert any(path.endswith(".safetensors") for path in files)
    pickled = [path for path in files if path.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))]
    assert not pickled, pickled
    assert sum(os.path.getsize(path) for path in files) < MAX_SIZE_BYTES


def test_default_model_loads_as_a_pipeline(pipe):
    assert isinstance(pipe, UniViGUPipeline)
    assert isinstance(pipe.transformer, UniViGUModel)
    config = pipe.config
    assert (config.default_height, config.default_width, config.default_num_frames) == (32, 32, 9)


def test_auto_model_loads_the_transformer():
    assert isinstance(AutoModel.from_pretrained(univigu_hf.DEFAULT_MODEL), UniViGUModel)


def test_caption_of_the_sample_video(pipe):
    text = pipe.caption(
        univigu_hf.SAMPLE_VIDEO, num_inference_steps=2, generator=torch.Generator().manual_seed(0)
    ).text
    assert isinstance(text, list) and len(text) == 1 and isinstance(text[0], str)


def test_generate_video(pipe):
    frames = pipe.generate_video(
        shapes.HELD_OUT_PROMPTS[0], num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np"
    ).frames
    assert frames.shape == (1, 9, 32, 32, 3)
    assert np.isfinite(frames).all() and frames.min() >= 0.0 and frames.max() <= 1.0


def test_generate_joint(pipe):
    output = pipe.generate_joint(
        shapes.TRAIN_PROMPTS[0], num_inference_steps=2, generator=[torch.Generator().manual_seed(0)], output_type="np"
    )
    assert output.frames.shape == (1, 9, 32, 32, 3)
    assert len(output.text) == 1 and isinstance(output.text[0], str)
