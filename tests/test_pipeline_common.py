"""`UniViGUPipeline` against the conventions of diffusers' `PipelineTesterMixin`, with the parameters of diffusers'
Wan pipeline test: a tiny tester config and the common checks (written here; diffusers' test code is not vendored).

Checks of the mixin that do not apply on this pipeline are listed in docs/architecture.md (no optional components;
fp16 inference and fp16 save/load are CUDA-only in the mixin)."""

import inspect
import os

import pytest
import torch

from univigu_hf import UniViGUPipeline, UniViGUPipelineOutput
from univigu_hf.testing import build_tiny_pipelines


class UniViGUPipelineTesterConfig:
    pipeline_class = UniViGUPipeline
    # WanPipelineTesterConfig's parameters.
    required_input_params_in_call_signature = frozenset(
        ["prompt", "negative_prompt", "height", "width", "guidance_scale", "prompt_embeds", "negative_prompt_embeds"]
    )
    optional_input_params = frozenset(
        ["num_inference_steps", "num_videos_per_prompt", "generator", "latents", "output_type", "return_dict"]
    )
    output_shape = (5, 3, 16, 16)

    def get_pipeline(self) -> UniViGUPipeline:
        return build_tiny_pipelines()[0]

    def get_generator(self, seed: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    def get_dummy_inputs(self, seed: int = 0) -> dict:
        return {
            "prompt": "a red circle moving left",
            "negative_prompt": "gray",
            "generator": self.get_generator(seed),
            "num_inference_steps": 2,
            "guidance_scale": 6.0,
            "height": 16,
            "width": 16,
            "num_frames": 5,
            "max_sequence_length": 16,
            "output_type": "pt",
        }


class PipelineConventionsMixin:
    """The checks of diffusers' `PipelineTesterMixin` that apply to a text-to-video pipeline on CPU."""

    def test_output(self):
        frames = self.get_pipeline()(**self.get_dummy_inputs()).frames
        assert tuple(frames[0].shape) == self.output_shape

    def test_save_load_local(self, tmp_path):
        pipe = self.get_pipeline()
        expected = pipe(**self.get_dummy_inputs()).frames
        pipe.save_pretrained(tmp_path)
        loaded = self.pipeline_class.from_pretrained(tmp_path)
        loaded.set_progress_bar_config(disable=True)
        assert torch.equal(loaded(**self.get_dummy_inputs()).frames, expected)

    def test_pipeline_call_signature(self):
        parameters = inspect.signature(self.pipeline_class.__call__).parameters
        missing = (self.required_input_params_in_call_signature | self.optional_input_params) - set(parameters)
        assert missing == set()

    def test_inference_batch_consistent(self):
        pipe = self.get_pipeline()
        inputs = self.get_dummy_inputs()
        inputs.update(prompt=[inputs["prompt"], "a blue square moving up"], negative_prompt=None)
        inputs["generator"] = [self.get_generator(i) for i in range(2)]
        assert len(pipe(**inputs).frames) == 2

    def test_inference_batch_single_identical(self):
        pipe = self.get_pipeline()
        prompts = ["a red circle moving left", "a blue square moving up"]
        single = [
            pipe(**{**self.get_dummy_inputs(), "prompt": p, "generator": self.get_generator(i)}).frames[0]
            for i, p in enumerate(prompts)
        ]
        batched = pipe(
            **{**self.get_dummy_inputs(), "prompt": prompts, "generator": [self.get_generator(i) for i in range(2)]}
        ).frames
        for alone, together in zip(single, batched):
            torch.testing.assert_close(together, alone, atol=1e-4, rtol=0)

    def test_dict_tuple_outputs_equivalent(self):
        pipe = self.get_pipeline()
        as_dict = pipe(**self.get_dummy_inputs())
        as_tuple = pipe(**self.get_dummy_inputs(), return_dict=False)
        assert isinstance(as_dict, UniViGUPipelineOutput) and isinstance(as_tuple, tuple)
        assert torch.equal(as_tuple[0], as_dict.frames)

    def test_components_function(self):
        pipe = self.get_pipeline()
        init_parameters = set(inspect.signature(self.pipeline_class.__init__).parameters) - {"self"}
        settings = {
            name: value for name, value in pipe.config.items() if name in init_parameters - set(pipe.components)
        }
        assert set(pipe.components) == {"vae", "text_encoder", "tokenizer", "transformer", "scheduler"}
        rebuilt = self.pipeline_class(**pipe.components, **settings)
        rebuilt.set_progress_bar_config(disable=True)
        assert torch.equal(rebuilt(**self.get_dummy_inputs()).frames, pipe(**self.get_dummy_inputs()).frames)

    def test_to_device(self):
        pipe = self.get_pipeline().to("cpu")
        devices = {component.device.type for component in pipe.components.values() if hasattr(component, "device")}
        assert devices == {"cpu"}
        assert not torch.isnan(pipe(**self.get_dummy_inputs()).frames).any()

    def test_to_dtype(self):
        pipe = self.get_pipeline()
        pipe.to(dtype=torch.bfloat16)
        dtypes = {name: c.dtype for name, c in pipe.components.items() if hasattr(c, "dtype")}
        assert set(dtypes.values()) == {torch.bfloat16}, dtypes

    def test_num_videos_per_prompt(self):
        pipe = self.get_pipeline()
        for batch in (1, 2):
            for per_prompt in (1, 2):
                inputs = self.get_dummy_inputs()
                inputs.update(
                    prompt=[inputs["prompt"]] * batch, negative_prompt=None, num_videos_per_prompt=per_prompt
                )
                assert len(pipe(**inputs).frames) == batch * per_prompt

    def test_cfg(self):
        pipe = self.get_pipeline()
        without = pipe(**{**self.get_dummy_inputs(), "guidance_scale": 1.0}).frames
        with_cfg = pipe(**self.get_dummy_inputs()).frames
        assert without.shape == with_cfg.shape and not torch.equal(without, with_cfg)

    def test_callback_inputs(self):
        pipe = self.get_pipeline()
        parameters = inspect.signature(pipe.__call__).parameters
        assert {"callback_on_step_end", "callback_on_step_end_tensor_inputs"} <= set(parameters)
        seen = []

        def only_allowed(pipe, step, timestep, tensors):
            seen.append(set(tensors))
            assert set(tensors) <= set(pipe._callback_tensor_inputs)
            return tensors

        inputs = {**self.get_dummy_inputs(), "callback_on_step_end_tensor_inputs": pipe._callback_tensor_inputs}
        pipe(**inputs, callback_on_step_end=only_allowed)
        assert seen and seen[0] == set(pipe._callback_tensor_inputs)

        def zero_last_step(pipe, step, timestep, tensors):
            if step == pipe.num_timesteps - 1:
                tensors["latents"] = torch.zeros_like(tensors["latents"])
            return tensors

        inputs = {**self.get_dummy_inputs(), "output_type": "latent"}
        zeroed = pipe(**inputs, callback_on_step_end=zero_last_step).frames
        assert zeroed.abs().sum() == 0

    def test_callback_cfg(self):
        pipe = self.get_pipeline()
        scales = []

        def raise_guidance(pipe, step, timestep, tensors):
            pipe._guidance_scale += 1.0
            scales.append(pipe.guidance_scale)
            return tensors

        inputs = self.get_dummy_inputs()
        pipe(**inputs, callback_on_step_end=raise_guidance)
        assert scales == [inputs["guidance_scale"] + 1 + i for i in range(inputs["num_inference_steps"])]

    def test_serialization_with_variants(self, tmp_path):
        pipe = self.get_pipeline()
        pipe.save_pretrained(tmp_path, variant="fp16")
        for name, component in pipe.components.items():
            if isinstance(component, torch.nn.Module):
                weights = [f for f in os.listdir(tmp_path / name) if f.endswith(".safetensors")]
                assert weights and all(".fp16." in f or ".fp16-" in f for f in weights), (name, weights)

    def test_loading_with_variants(self, tmp_path):
        pipe = self.get_pipeline()
        pipe.save_pretrained(tmp_path, variant="fp16")
        loaded = self.pipeline_class.from_pretrained(tmp_path, variant="fp16")
        for name, component in pipe.components.items():
            if isinstance(component, torch.nn.Module):
                for key, tensor in component.state_dict().items():
                    assert torch.equal(loaded.components[name].state_dict()[key], tensor), (name, key)

    def test_loading_with_incorrect_variants_raises_error(self, tmp_path):
        pipe = self.get_pipeline()
        pipe.save_pretrained(tmp_path, variant="fp16")
        with pytest.raises(ValueError, match="variant"):
            self.pipeline_class.from_pretrained(tmp_path, variant="fp32")

    def test_encode_prompt_works_in_isolation(self, tmp_path):
        pipe = self.get_pipeline()
        inputs = {**self.get_dummy_inputs(), "use_text_stream": False}
        expected = pipe(**inputs).frames
        pipe.save_pretrained(tmp_path)
        text_only = self.pipeline_class.from_pretrained(tmp_path, transformer=None, vae=None)
        with torch.no_grad():
            embeds, negative = text_only.encode_prompt(
                inputs.pop("prompt"),
                inputs.pop("negative_prompt"),
                do_classifier_free_guidance=True,
                max_sequence_length=inputs["max_sequence_length"],
            )
        inputs["generator"] = self.get_generator(0)
        got = pipe(**inputs, prompt_embeds=embeds, negative_prompt_embeds=negative).frames
        assert torch.equal(got, expected)

    def test_torch_dtype_dict(self, tmp_path):
        self.get_pipeline().save_pretrained(tmp_path)
        loaded = self.pipeline_class.from_pretrained(
            tmp_path, torch_dtype={"transformer": torch.bfloat16, "default": torch.float16}
        )
        assert loaded.transformer.dtype == torch.bfloat16
        assert loaded.vae.dtype == torch.float16 and loaded.text_encoder.dtype == torch.float16


class TestUniViGUPipelineConventions(UniViGUPipelineTesterConfig, PipelineConventionsMixin):
    pass
