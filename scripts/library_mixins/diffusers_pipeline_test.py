"""
diffusers' `PipelineTesterMixin` and `MemoryTesterMixin` run on `UniViGUPipeline`, with the parameters of diffusers'
own Wan pipeline test (call signature, batch parameters, 16x16 inputs, two steps, guidance 6.0) and the tiny
components of this repository (diffusers' test downloads its tiny T5 from the Hub; these are built locally).

Not a test of this repository's suite: `scripts/library_mixins/run.py` copies it into a copy of diffusers' `tests/`
package and runs it there.
"""

import diffusers.pipelines

from univigu_hf import UniViGUPipeline
from univigu_hf.testing import build_tiny_pipelines

from .pipelines.testing_utils import (
    BasePipelineTesterConfig,
    FasterCacheTesterMixin,
    FirstBlockCacheTesterMixin,
    MagCacheTesterMixin,
    MemoryTesterMixin,
    PipelineTesterMixin,
    PyramidAttentionBroadcastTesterMixin,
    TaylorSeerCacheTesterMixin,
)


# `test_encode_prompt_works_in_isolation` reads `encode_prompt`'s return names from the source of the class it finds
# by name in `diffusers.pipelines`, where only in-tree pipelines live: make ours findable there.
setattr(diffusers.pipelines, UniViGUPipeline.__name__, UniViGUPipeline)


class UniViGUPipelineTesterConfig(BasePipelineTesterConfig):
    pipeline_class = UniViGUPipeline
    required_input_params_in_call_signature = frozenset(
        ["prompt", "negative_prompt", "height", "width", "guidance_scale", "prompt_embeds", "negative_prompt_embeds"]
    )
    batch_input_params = frozenset(["prompt"])
    optional_input_params = frozenset(
        ["num_inference_steps", "num_videos_per_prompt", "generator", "latents", "output_type", "return_dict"]
    )
    output_shape = (9, 3, 16, 16)

    def get_dummy_components(self, num_layers: int = 2):
        if num_layers != 2:
            raise ValueError(f"the tiny components have 2 layers, got num_layers={num_layers}")
        return build_tiny_pipelines()[0].components

    def get_dummy_inputs(self):
        return {
            "prompt": "a red circle moving left",
            "negative_prompt": "gray",
            "generator": self.get_generator(0),
            "num_inference_steps": 2,
            "guidance_scale": 6.0,
            "height": 16,
            "width": 16,
            "num_frames": 9,
            "max_sequence_length": 16,
            "output_type": "pt",
        }


class TestUniViGUPipeline(UniViGUPipelineTesterConfig, PipelineTesterMixin):
    text_stream = True

    def get_dummy_inputs(self):
        return {**super().get_dummy_inputs(), "use_text_stream": self.text_stream}

    def test_encode_prompt_works_in_isolation(self):
        # The mixin runs the pipeline with neither text encoder nor tokenizer and without the prompt, and the text
        # stream holds the prompt's tokens: run it without the stream (exactly WanPipeline). With the stream, the
        # prompt comes with `prompt_embeds` and only the tokenizer is needed (tested in the repository's suite).
        self.text_stream = False
        super().test_encode_prompt_works_in_isolation()


class TestUniViGUPipelineMemory(UniViGUPipelineTesterConfig, MemoryTesterMixin):
    pass


class TestUniViGUPipelineFirstBlockCache(UniViGUPipelineTesterConfig, FirstBlockCacheTesterMixin):
    pass


class TestUniViGUPipelineTaylorSeerCache(UniViGUPipelineTesterConfig, TaylorSeerCacheTesterMixin):
    pass


class TestUniViGUPipelineMagCache(UniViGUPipelineTesterConfig, MagCacheTesterMixin):
    pass


class TestUniViGUPipelinePyramidAttentionBroadcast(UniViGUPipelineTesterConfig, PyramidAttentionBroadcastTesterMixin):
    # The block list is `blocks`, as in Wan (the mixin's default names `transformer_blocks`).
    PAB_CONFIG = {**PyramidAttentionBroadcastTesterMixin.PAB_CONFIG, "spatial_attention_block_identifiers": ["blocks"]}

    def test_pyramid_attention_broadcast_layers(self):
        with _one_call_per_step(self):
            super().test_pyramid_attention_broadcast_layers()


class TestUniViGUPipelineFasterCache(UniViGUPipelineTesterConfig, FasterCacheTesterMixin):
    # CFG runs as two calls (as WanPipeline), so FasterCache applies in its guidance-distilled mode (the attention
    # approximation); the batched-CFG mode is refused with that reason.
    FASTER_CACHE_CONFIG = {**FasterCacheTesterMixin.FASTER_CACHE_CONFIG, "is_guidance_distilled": True}

    def test_faster_cache_state(self):
        with _one_call_per_step(self):
            super().test_faster_cache_state()


class _one_call_per_step:
    """The cache mixins' state checks expect one denoiser call per step (batched CFG); UniViGUPipeline, as WanPipeline,
    runs CFG as two calls, so within this context those checks run without CFG (guidance 1.0). The inference checks
    keep CFG."""

    def __init__(self, tester):
        self.tester = tester

    def __enter__(self):
        original = self.tester.get_dummy_inputs
        self.tester.get_dummy_inputs = lambda: {**original(), "guidance_scale": 1.0}

    def __exit__(self, *exc):
        del self.tester.get_dummy_inputs
