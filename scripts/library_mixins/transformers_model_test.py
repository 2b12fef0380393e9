"""
transformers' `ModelTesterMixin` and `ConfigTester` run on `UniViGUModel` / `UniViGUConfig`.

Not a test of this repository's suite: `scripts/library_mixins/run.py` copies it into a copy of transformers' own
`tests/` package (the mixins import their siblings relatively) and runs it there.
"""

import unittest

from univigu_hf import UniViGUConfig, UniViGUModel
from univigu_hf.testing import UniViGUModelTester

from .test_configuration_common import ConfigTester
from .test_modeling_common import ModelTesterMixin


class MixinModelTester(UniViGUModelTester):
    """The mixin's token-embedding tests edit `inputs_dict["input_ids"]`: the caption ids go by that name here and
    are renamed to the model's `text_ids` in `_prepare_for_class`."""

    def prepare_config_and_inputs_for_common(self, seed: int = 0):
        config, inputs = super().prepare_config_and_inputs_for_common(seed)
        inputs["input_ids"] = inputs.pop("text_ids")
        return config, inputs


class UniViGUModelTest(ModelTesterMixin, unittest.TestCase):
    all_model_classes = (UniViGUModel,)
    # A diffusion transformer: no attention maps are returned and no position embeddings can be resized.
    has_attentions = False
    test_resize_position_embeddings = False
    # The mixin skips this check for files without a recent copyright line; it applies to this model.
    test_can_init_all_missing_weights_before_2023 = True

    def setUp(self):
        self.model_tester = MixinModelTester(self)
        self.config_tester = ConfigTester(self, config_class=UniViGUConfig, has_text_modality=False)

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        if "input_ids" in inputs:
            inputs["text_ids"] = inputs.pop("input_ids")
        return inputs

    def test_config(self):
        self.config_tester.run_common_tests()

    # Not applicable: the mixin trains on `outputs.loss`, and a flow-matching denoiser's forward returns predictions,
    # not a loss (the loss is `univigu_hf.training.unified_flow_loss`; the repository's own tests train through it, with
    # and without gradient checkpointing).
    def test_training(self):
        self.skipTest("not applicable: no `.loss` in the output")

    def test_training_gradient_checkpointing(self):
        self.skipTest("not applicable: no `.loss` in the output")

    def test_training_gradient_checkpointing_use_reentrant_false(self):
        self.skipTest("not applicable: no `.loss` in the output")

    def test_training_gradient_checkpointing_use_reentrant_true(self):
        self.skipTest("not applicable: no `.loss` in the output")
