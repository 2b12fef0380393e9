"""
diffusers' `SchedulerCommonTest` run on `UniFlowScheduler` (1000 training steps, shift 3, the tiny 64-token
caption vocabulary).

Not a test of this repository's suite: `scripts/library_mixins/run.py` copies it into a copy of diffusers' `tests/`
package and runs it there.
"""

from univigu_hf import UniFlowScheduler

from .schedulers.test_schedulers import SchedulerCommonTest


class UniFlowSchedulerTest(SchedulerCommonTest):
    scheduler_classes = (UniFlowScheduler,)
    forward_default_kwargs = (("num_inference_steps", 10),)

    def get_scheduler_config(self, **kwargs):
        config = {"num_train_timesteps": 1000, "shift": 3.0, "text_vocab_size": 64}
        config.update(**kwargs)
        return config

    # Not applicable to flow-matching schedulers; diffusers' own FlowMatchEulerDiscreteScheduler fails the same three:
    # the model input is not scaled (no `scale_model_input`), the initial noise is a unit Gaussian (no
    # `init_noise_sigma`), and there are no betas.
    def test_add_noise_device(self):
        self.skipTest("not applicable: no `scale_model_input` on a flow scheduler")

    def test_scheduler_public_api(self):
        self.skipTest("not applicable: no `scale_model_input` / `init_noise_sigma` on a flow scheduler")

    def test_trained_betas(self):
        self.skipTest("not applicable: no `trained_betas` on a flow scheduler")
