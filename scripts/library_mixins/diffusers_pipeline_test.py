"""
diffusers' `PipelineTesterMixin` and `MemoryTesterMixin` run on `UniViGUPipeline`, with the parameters of diffusers'
own Wan pipeline test (call signature, batch parameters, 16x16 inputs, two steps, guidance 6.0) and the tiny
components of this repository (diffusers' test downloads its tiny T5 from the Hub; these are built locally).

Not a test of this repository's suite: `scripts/library_mixins/run.py` copies it into a copy of diffusers' `tests/`
package and runs it there.
"""

import diffusers.pipelines

from univigu_hf import UniViGUPipeline
from univigu_hf.utils.testing import build_tiny_pipelines

from .pipelines.testing_utils import BasePipelineTesterConfig, MemoryTesterMixin, PipelineTesterMixin


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

    def get_dummy_components(self):
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
