"""`UniViGUModel` and `UniViGUConfig` against the conventions of transformers' `ModelTesterMixin` and `ConfigTester`
(written here, not vendored): the shared tiny tester (`univigu_hf.testing.UniViGUModelTester`) and the
common checks. The mixin checks that do not apply (attention maps, `.loss`) are listed in docs/architecture.md."""

import inspect
import json
import os

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModel
from transformers.modeling_layers import GradientCheckpointingLayer

from univigu_hf import UniViGUConfig, UniViGUModel, UniViGUModelOutput
from univigu_hf.testing import UniViGUModelTester


@pytest.fixture
def tester() -> UniViGUModelTester:
    return UniViGUModelTester()


def _model(tester, seed: int = 0) -> UniViGUModel:
    torch.manual_seed(seed)
    return UniViGUModel(tester.get_config()).eval()


class TestConfigConventions:
    def test_json_round_trip(self, tmp_path, tester):
        config = tester.get_config()
        assert json.loads(config.to_json_string())["text_vocab_size"] == config.text_vocab_size
        config.save_pretrained(tmp_path)
        loaded = AutoConfig.from_pretrained(tmp_path)
        assert type(loaded) is UniViGUConfig and loaded.to_diff_dict() == config.to_diff_dict()
        config.to_json_file(tmp_path / "other.json")
        assert UniViGUConfig.from_json_file(tmp_path / "other.json").to_dict() == config.to_dict()

    def test_common_arguments_are_kept(self, tester):
        config = tester.get_config(output_hidden_states=True, return_dict=False, dtype="float16")
        assert config.output_hidden_states and not config.return_dict and config.dtype == torch.float16

    def test_from_pretrained_kwargs_override(self, tmp_path, tester):
        tester.get_config().save_pretrained(tmp_path / "sub")
        config, unused = UniViGUConfig.from_pretrained(
            tmp_path, subfolder="sub", num_layers=1, not_a_field=3, return_unused_kwargs=True
        )
        assert config.num_layers == 1 and config.num_hidden_layers == 1 and unused == {"not_a_field": 3}

    def test_init_without_params(self):
        assert UniViGUConfig().text_vocab_size == 256300


class TestModelConventions:
    def test_forward_signature_starts_with_the_main_input(self, tester):
        names = list(inspect.signature(UniViGUModel.forward).parameters)[1:]
        assert names[0] == UniViGUModel.main_input_name == "video_latents"
        assert {"output_hidden_states", "return_dict"} <= set(names)

    def test_save_load_and_determinism(self, tmp_path, tester):
        model = _model(tester)
        config, inputs = tester.prepare_config_and_inputs_for_common()
        with torch.no_grad():
            first, second = model(**inputs), model(**inputs)
        assert torch.equal(first.video_velocity, second.video_velocity)
        model.save_pretrained(tmp_path)
        reloaded = AutoModel.from_pretrained(tmp_path).eval()
        with torch.no_grad():
            again = reloaded(**inputs)
        assert torch.equal(again.video_velocity, first.video_velocity)
        assert torch.equal(again.text_logits, first.text_logits)

    def test_dict_and_tuple_outputs_are_equivalent(self, tester):
        model = _model(tester)
        _, inputs = tester.prepare_config_and_inputs_for_common()
        with torch.no_grad():
            as_dict = model(**inputs, output_hidden_states=True)
            as_tuple = model(**inputs, output_hidden_states=True, return_dict=False)
        assert isinstance(as_dict, UniViGUModelOutput) and len(as_tuple) == len(as_dict.to_tuple()) == 3
        assert torch.equal(as_tuple[0], as_dict.video_velocity) and torch.equal(as_tuple[1], as_dict.text_logits)
        for ours, theirs in zip(as_tuple[2], as_dict.hidden_states):
            assert torch.equal(ours, theirs)

    def test_return_dict_and_output_hidden_states_default_to_the_config(self, tester):
        config, inputs = tester.prepare_config_and_inputs_for_common()
        torch.manual_seed(0)
        model = UniViGUModel(tester.get_config(return_dict=False, output_hidden_states=True)).eval()
        with torch.no_grad():
            outputs = model(**inputs)
        assert isinstance(outputs, tuple) and len(outputs[2]) == config.num_layers + 1

    def test_hidden_states_are_the_joint_stream_and_keep_gradients(self, tester):
        model = _model(tester).train()
        config, inputs = tester.prepare_config_and_inputs_for_common()
        outputs = model(**inputs, output_hidden_states=True)
        assert len(outputs.hidden_states) == config.num_layers + 1
        for hidden in outputs.hidden_states:
            assert tuple(hidden.shape) == (tester.batch_size, tester.seq_length, config.hidden_size)
        first = outputs.hidden_states[0]
        first.retain_grad()
        outputs.video_velocity.flatten()[0].backward()
        assert first.grad is not None and first.grad.abs().sum() > 0
        # One stream alone: its own tokens.
        with torch.no_grad():
            video_only = model(
                video_latents=inputs["video_latents"],
                video_timestep=inputs["video_timestep"],
                output_hidden_states=True,
            )
        assert video_only.hidden_states[-1].shape[1] == tester.num_video_tokens

    def test_hidden_states_do_not_change_the_outputs(self, tester):
        model = _model(tester)
        _, inputs = tester.prepare_config_and_inputs_for_common()
        with torch.no_grad():
            plain, recorded = model(**inputs), model(**inputs, output_hidden_states=True)
        assert torch.equal(plain.video_velocity, recorded.video_velocity)
        assert torch.equal(plain.text_logits, recorded.text_logits)

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    def test_keep_in_fp32_modules(self, tmp_path, tester, dtype):
        _model(tester).save_pretrained(tmp_path)
        model = UniViGUModel.from_pretrained(tmp_path, dtype=dtype)
        kept = [name for name, p in model.state_dict().items() if p.dtype == torch.float32]
        assert kept and all(UniViGUModel.keeps_fp32(name) for name in kept)
        assert all(p.dtype == dtype for name, p in model.state_dict().items() if not UniViGUModel.keeps_fp32(name))
        assert model.dtype == dtype

    def test_keep_in_fp32_names_match_modules_with_weights(self, tester):
        names = list(_model(tester).state_dict())
        assert not set(UniViGUModel._keep_in_fp32_modules) & set(UniViGUModel._keep_in_fp32_modules_strict)
        for module in UniViGUModel._keep_in_fp32_modules_strict:
            assert any(f".{module}." in f".{name}." for name in names), module

    def test_gradient_checkpointing_enable_disable(self, tester):
        model = _model(tester)
        layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
        assert len(layers) == tester.num_hidden_layers
        enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        enable()
        assert all(layer.gradient_checkpointing for layer in layers)
        disable = getattr(model, "activation_checkpointing_disable", None) or model.gradient_checkpointing_disable
        disable()
        assert not any(layer.gradient_checkpointing for layer in layers)

    def test_missing_weights_are_an_error_unless_the_loading_info_is_asked_for(self, tmp_path, tester):
        _model(tester).save_pretrained(tmp_path)
        save_file({"tensor": torch.tensor([1, 2])}, os.path.join(tmp_path, "model.safetensors"), {"format": "pt"})
        with pytest.raises(ValueError, match=r"tensors missing from the checkpoint .*checkpoint tensors the config"):
            UniViGUModel.from_pretrained(tmp_path)
        model, info = UniViGUModel.from_pretrained(tmp_path, output_loading_info=True)
        assert set(info["missing_keys"]) == set(model.state_dict()) and set(info["unexpected_keys"]) == {"tensor"}
        assert all(torch.isfinite(p).all() for p in model.parameters())

    def test_complete_checkpoint_reports_nothing(self, tmp_path, tester):
        _model(tester).save_pretrained(tmp_path)
        _, info = UniViGUModel.from_pretrained(tmp_path, output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]

    def test_mismatched_shapes_raise_even_with_the_loading_info(self, tmp_path, tester):
        _model(tester).save_pretrained(tmp_path)
        config = tester.get_config(text_vocab_size=80)
        with pytest.raises(ValueError, match="differently shaped tensors"):
            UniViGUModel.from_pretrained(tmp_path, config=config, output_loading_info=True)
        model, info = UniViGUModel.from_pretrained(
            tmp_path, config=config, ignore_mismatched_sizes=True, output_loading_info=True
        )
        assert model.text_embedding.num_embeddings == 80
        assert {key for key, *_ in info["mismatched_keys"]} >= {"text_embedding.weight", "text_proj_out.weight"}

    def test_an_empty_state_dict_initialises_every_weight_as_init_does(self, tester):
        torch.manual_seed(0)
        from_init = UniViGUModel(tester.get_config())
        torch.manual_seed(0)
        from_state_dict = UniViGUModel.from_pretrained(None, config=tester.get_config(), state_dict={})
        assert not [name for name, p in from_state_dict.named_parameters() if p.device.type == "meta"]
        assert from_state_dict.state_dict().keys() == from_init.state_dict().keys()
        for name, tensor in from_state_dict.state_dict().items():
            assert torch.isfinite(tensor).all(), name

    def test_training_mode_runs_and_every_parameter_gets_a_gradient(self, tester):
        model = _model(tester).train()
        _, inputs = tester.prepare_config_and_inputs_for_common()
        outputs = model(**inputs)
        (outputs.video_velocity.square().mean() + outputs.text_logits.logsumexp(-1).mean()).backward()
        assert [name for name, p in model.named_parameters() if p.grad is None] == []
