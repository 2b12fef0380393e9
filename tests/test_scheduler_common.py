"""`UniFlowScheduler` against the conventions of diffusers' `SchedulerCommonTest` (written here, not vendored), with
FlowMatchEulerDiscreteScheduler's tester settings. `scale_model_input` and `init_noise_sigma`-based checks do not
apply to a flow scheduler (docs/architecture.md)."""

import inspect

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from univigu_hf import UniFlowScheduler
from univigu_hf.schedulers import UniFlowSchedulerOutput


class UniFlowSchedulerTesterConfig:
    scheduler_class = UniFlowScheduler
    forward_default_kwargs = {"num_inference_steps": 10}

    def get_scheduler_config(self, **overrides) -> dict:
        config = {"num_train_timesteps": 1000, "shift": 3.0, "text_vocab_size": 50}
        config.update(overrides)
        return config

    @property
    def dummy_sample(self) -> torch.Tensor:
        return torch.rand(2, 16, 3, 4, 4, generator=torch.Generator().manual_seed(0))

    def dummy_model(self):
        return lambda sample, timestep: sample * timestep / 1000


class SchedulerConventionsMixin:
    def _run(self, scheduler, steps: int = 10) -> list[torch.Tensor]:
        scheduler.set_timesteps(steps)
        sample, model, outputs = self.dummy_sample, self.dummy_model(), []
        for t in scheduler.timesteps:
            sample = scheduler.step(model(sample, t), t, sample).prev_sample
            outputs.append(sample)
        return outputs

    def test_from_save_pretrained(self, tmp_path):
        scheduler = self.scheduler_class(**self.get_scheduler_config())
        scheduler.save_config(tmp_path)
        loaded = self.scheduler_class.from_pretrained(tmp_path)
        public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
        assert public(loaded.config) == public(scheduler.config)
        for a, b in zip(self._run(scheduler), self._run(loaded)):
            assert torch.equal(a, b)

    def test_step_shape(self):
        scheduler = self.scheduler_class(**self.get_scheduler_config())
        scheduler.set_timesteps(5)
        sample = self.dummy_sample
        t0, t1 = scheduler.timesteps[0], scheduler.timesteps[1]
        assert scheduler.step(sample, t0, sample).prev_sample.shape == sample.shape
        assert scheduler.step(sample, t1, sample).prev_sample.shape == sample.shape

    def test_scheduler_outputs_equivalence(self):
        scheduler = self.scheduler_class(**self.get_scheduler_config())
        scheduler.set_timesteps(5)
        sample, t = self.dummy_sample, scheduler.timesteps[0]
        as_dict = scheduler.step(sample, t, sample)
        scheduler.set_timesteps(5)
        as_tuple = scheduler.step(sample, t, sample, return_dict=False)
        assert isinstance(as_dict, UniFlowSchedulerOutput) and isinstance(as_tuple, tuple)
        assert torch.equal(as_tuple[0], as_dict.prev_sample)

    def test_scheduler_public_api(self):
        scheduler = self.scheduler_class(**self.get_scheduler_config())
        for name in ("set_timesteps", "step", "scale_noise", "add_noise", "set_begin_index", "timesteps", "order"):
            assert hasattr(scheduler, name), name
        assert len(scheduler) == scheduler.config.num_train_timesteps

    def test_add_noise_device_and_dtype(self):
        scheduler = self.scheduler_class(**self.get_scheduler_config())
        sample = self.dummy_sample.to(torch.float64)
        noisy = scheduler.add_noise(sample, torch.randn_like(sample), torch.tensor([0.5, 0.25]))
        assert noisy.shape == sample.shape and noisy.dtype == torch.float64 and noisy.device == sample.device

    def test_compatible_with_flow_match_euler(self, tmp_path):
        # Declared in `_compatibles`: each loads the other's config, and the video steps agree bit for bit.
        assert "FlowMatchEulerDiscreteScheduler" in self.scheduler_class._compatibles
        ours = self.scheduler_class(**self.get_scheduler_config())
        theirs = FlowMatchEulerDiscreteScheduler.from_config(ours.config)
        for a, b in zip(self._run(ours), self._run(theirs)):
            assert torch.equal(a, b)

    def test_init_takes_only_config_arguments(self):
        parameters = set(inspect.signature(self.scheduler_class.__init__).parameters) - {"self"}
        scheduler = self.scheduler_class(**self.get_scheduler_config())
        assert parameters <= set(scheduler.config)

    def test_begin_index_and_step_index(self):
        scheduler = self.scheduler_class(**self.get_scheduler_config())
        scheduler.set_timesteps(4)
        assert scheduler.step_index is None
        scheduler.set_begin_index(2)
        t = scheduler.timesteps[2]
        scheduler.step(self.dummy_sample, t, self.dummy_sample)
        assert scheduler.step_index == 3


class TestUniFlowSchedulerConventions(UniFlowSchedulerTesterConfig, SchedulerConventionsMixin):
    pass
