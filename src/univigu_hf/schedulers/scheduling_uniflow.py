# Copyright 2026 The univigu_hf authors. All rights reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Unified flow-matching scheduler for Uni-ViGU.

One scheduler drives both streams of the unified Wan2.1 transformer:

* **Video** follows continuous (rectified) flow matching in the Wan convention: ``x_s = (1 - s) * x0 + s * noise``, the
  model predicts the velocity ``noise - x0`` and sampling takes Euler steps ``x <- x + v * (s_next - s)`` on a shifted
  sigma grid. With the default ``video_sigma_schedule="flow_match_euler"`` the grid and the update are those of
  diffusers' [`FlowMatchEulerDiscreteScheduler`] (bit for bit).
* **Text** follows discrete flow matching on a *mixture path*: at text time ``t`` (0 = source noise, 1 = data) every
  token equals the clean token with probability ``kappa(t) = t**n`` and a source token otherwise (uniform random ids or
  a mask id). The model returns logits for the clean token; [`UniFlowScheduler.step_text`] performs one discrete Euler
  jump of the corresponding continuous-time Markov chain.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput, logging

from ..utils.checks import is_int, is_real
from ..utils.torch_utils import as_float_tensor, random_device
from .text_flow import DiscreteTextFlowMixin


logger = logging.get_logger(__name__)  # pylint: disable=invalid-name

VIDEO_SIGMA_SCHEDULES = ("flow_match_euler", "linear")
TEXT_TIME_SCHEDULES = ("uniform", "video")
VIDEO_SIGMA_SAMPLING_MODES = ("uniform", "shifted_uniform", "logit_normal")


@dataclass
class UniFlowSchedulerOutput(BaseOutput):
    """
    Output class for [`UniFlowScheduler.step`] (the video stream).

    Args:
        prev_sample (`torch.Tensor` of shape `(batch_size, num_channels, num_frames, height, width)`):
            The sample at the next (less noisy) point of the sigma grid, to be used as the next model input.
    """

    prev_sample: torch.Tensor


def shifted_sigmas(sigmas, shift: float):
    """The timestep shift `s' = shift * s / (1 + (shift - 1) * s)` of the video sigmas (NumPy arrays or tensors, in
    their own dtype): the one place the formula is written."""
    return shift * sigmas / (1 + (shift - 1) * sigmas)


class UniFlowScheduler(DiscreteTextFlowMixin, SchedulerMixin, ConfigMixin):
    """
    Unified flow-matching scheduler for Uni-ViGU: continuous flow matching (Euler) for Wan video latents and discrete
    flow matching on a mixture path for text tokens.

    This model inherits from [`SchedulerMixin`] and [`ConfigMixin`]. Check the superclass documentation for the generic
    methods the library implements for all schedulers such as loading and saving.

    Video conventions: `x_s = (1 - s) * x0 + s * noise`, velocity target `noise - x0`, shifted sigma
    `s' = shift * s / (1 + (shift - 1) * s)` and timestep `num_train_timesteps * s'` (Wan scale, 1000 = pure noise).

    Text conventions: text time `t` in `[0, 1]` (0 = pure source noise, 1 = data); each token is clean with probability
    `kappa(t) = t**text_kappa_exponent`, else a source token; the model sees the timestep
    `round((1 - t) * num_train_timesteps)` and returns logits over the vocabulary for the clean token.

    Args:
        num_train_timesteps (`int`, defaults to 1000):
            Number of training timesteps; the timestep scale of both streams is `[0, num_train_timesteps]`.
        shift (`float`, defaults to 3.0):
            Shift of the video sigma schedule (3.0 is the official Uni-ViGU inference default).
        video_sigma_schedule (`str`, defaults to `"flow_match_euler"`):
            `"flow_match_euler"` reproduces [`FlowMatchEulerDiscreteScheduler`]`(num_train_timesteps, shift=shift)`
            exactly. `"linear"` is the DiffSynth schedule of the released Uni-ViGU inference code: sigmas =
            shift-map(linspace(1, 0, N + 1)[:-1]) followed by a terminal 0, timesteps = `num_train_timesteps * sigma`.
        text_source (`str`, defaults to `"uniform"`):
            Source distribution of the text path: `"uniform"` (ids uniform in `[0, text_vocab_size)`, the official
            default) or `"mask"` (every source token is `mask_token_id`).
        text_kappa_exponent (`float`, defaults to 1.0):
            Exponent `n` of the polynomial mixture schedule `kappa(t) = t**n`.
        text_vocab_size (`int`, *optional*):
            Number of token ids a uniform source draws from, i.e. `[0, text_vocab_size)`; excludes the mask token.
            Required to draw uniform source tokens.
        mask_token_id (`int`, *optional*):
            Id of the mask token; required when `text_source == "mask"`.
        text_final_step (`str`, defaults to `"argmax"`):
            What the last text step (`t + h >= 1`) returns: `"argmax"` of the logits or a `"sample"` from them (the
            latter is what the `flow_matching` Euler solver does).
        text_decoding (`str`, defaults to `"euler"`):
            `"euler"`: the discrete Euler solver. `"confidence"`: also commit, at each step, the positions whose
            largest softmax probability reaches `text_confidence_threshold` (at least one per row) and keep them fixed;
            [`~UniFlowScheduler.step_text`] returns the `text_committed` mask and the pipelines stop once it is full.
        text_confidence_threshold (`float`, defaults to 0.9):
            The commit probability of `"confidence"` decoding, in `(0, 1]`.
    """

    _compatibles = ["FlowMatchEulerDiscreteScheduler"]
    order = 1

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        shift: float = 3.0,
        video_sigma_schedule: str = "flow_match_euler",
        text_source: str = "uniform",
        text_kappa_exponent: float = 1.0,
        text_vocab_size: int | None = None,
        mask_token_id: int | None = None,
        text_final_step: str = "argmax",
        text_decoding: str = "euler",
        text_confidence_threshold: float = 0.9,
    ):
        if not is_int(num_train_timesteps) or num_train_timesteps <= 0:
            raise ValueError(f"num_train_timesteps must be a positive int, got {num_train_timesteps!r}")
        if not is_real(shift) or not math.isfinite(shift) or shift <= 0:
            raise ValueError(f"shift must be a positive finite float, got {shift!r}")
        if video_sigma_schedule not in VIDEO_SIGMA_SCHEDULES:
            raise ValueError(
                f"video_sigma_schedule must be one of {VIDEO_SIGMA_SCHEDULES}, got {video_sigma_schedule!r}"
            )
        self._check_text_config(text_source, text_kappa_exponent, text_vocab_size, mask_token_id, text_final_step)

        # Training grid, built exactly like FlowMatchEulerDiscreteScheduler.__init__ (its first and last entries give
        # the sigma_max / sigma_min that set_timesteps interpolates between).
        timesteps = np.linspace(1, num_train_timesteps, num_train_timesteps, dtype=np.float32)[::-1].copy()
        timesteps = torch.from_numpy(timesteps).to(dtype=torch.float32)
        sigmas = shifted_sigmas(timesteps / num_train_timesteps, shift)

        self.timesteps = sigmas * num_train_timesteps
        self.sigmas = sigmas.to("cpu")
        self.sigma_min = self.sigmas[-1].item()
        self.sigma_max = self.sigmas[0].item()
        self.text_times = None
        self.text_time_schedule = None
        self.num_inference_steps = None

        self._shift = shift
        self._step_index = None
        self._begin_index = None

    # ------------------------------------------------------------------------------------------------------------
    # Diffusers bookkeeping
    # ------------------------------------------------------------------------------------------------------------

    @property
    def shift(self) -> float:
        """
        The shift value of the video sigma schedule.
        """
        return self._shift

    @property
    def step_index(self) -> int | None:
        """
        The index counter for the current video timestep. It increases by 1 after each [`~UniFlowScheduler.step`].
        """
        return self._step_index

    @property
    def begin_index(self) -> int | None:
        """
        The index of the first video timestep. It should be set from the pipeline with
        [`~UniFlowScheduler.set_begin_index`].
        """
        return self._begin_index

    def set_begin_index(self, begin_index: int = 0) -> None:
        """
        Sets the begin index for the scheduler. This function should be run from the pipeline before inference.

        Args:
            begin_index (`int`, defaults to `0`):
                The begin index for the scheduler.
        """
        self._begin_index = begin_index

    def set_shift(self, shift: float) -> None:
        """
        Sets the shift value used by the next [`~UniFlowScheduler.set_timesteps`] and by the sigma samplers.

        Args:
            shift (`float`):
                The new (positive) shift value.
        """
        if not is_real(shift) or not math.isfinite(shift) or shift <= 0:
            raise ValueError(f"shift must be a positive finite float, got {shift!r}")
        self._shift = shift

    def __len__(self) -> int:
        return self.config.num_train_timesteps

    # ------------------------------------------------------------------------------------------------------------
    # Video time maps (the text ones are in text_flow.py)
    # ------------------------------------------------------------------------------------------------------------

    def shift_sigmas(self, sigmas: float | torch.Tensor, shift: float | None = None) -> torch.Tensor:
        """
        Applies the timestep shift `s' = shift * s / (1 + (shift - 1) * s)`.

        Args:
            sigmas (`float` or `torch.Tensor`):
                Unshifted sigmas in `[0, 1]`.
            shift (`float`, *optional*):
                The shift; `None` uses the scheduler's (`self.shift`).

        Returns:
            `torch.Tensor`: The shifted sigmas (same dtype as a floating input, float32 otherwise).
        """
        return shifted_sigmas(as_float_tensor(sigmas), self.shift if shift is None else shift)

    def sigma_to_timestep(self, sigmas: float | torch.Tensor) -> torch.Tensor:
        """
        Converts video sigmas to model timesteps on the Wan scale (`timestep = num_train_timesteps * sigma`).

        Args:
            sigmas (`float` or `torch.Tensor`):
                Video noise levels in `[0, 1]` (already shifted).

        Returns:
            `torch.Tensor`: The timesteps in `[0, num_train_timesteps]`.
        """
        return as_float_tensor(sigmas) * self.config.num_train_timesteps

    def timestep_to_sigma(self, timesteps: float | torch.Tensor) -> torch.Tensor:
        """
        Converts Wan-scale model timesteps to video sigmas (`sigma = timestep / num_train_timesteps`).

        Args:
            timesteps (`float` or `torch.Tensor`):
                Timesteps in `[0, num_train_timesteps]`.

        Returns:
            `torch.Tensor`: The sigmas in `[0, 1]`.
        """
        return as_float_tensor(timesteps) / self.config.num_train_timesteps

    # ------------------------------------------------------------------------------------------------------------
    # Video: inference
    # ------------------------------------------------------------------------------------------------------------

    def set_timesteps(
        self,
        num_inference_steps: int,
        device: str | torch.device | None = None,
        text_time_schedule: str = "uniform",
    ) -> None:
        """
        Sets the discrete video timesteps and the text-time grid used for inference.

        Args:
            num_inference_steps (`int`):
                Number of solver steps `N`.
            device (`str` or `torch.device`, *optional*):
                Device for `timesteps`, `sigmas` and `text_times`. If `None`, they stay on the CPU.
            text_time_schedule (`str`, defaults to `"uniform"`):
                Text-time grid. `"uniform"`: `linspace(0, 1, N + 1)`, the official captioning (V2T) solver grid.
                `"video"`: `1 - sigmas`, synchronised with the video for joint (T2VT) generation.

        Sets:
            `timesteps` (float32, length `N`, Wan scale), `sigmas` (float32, length `N + 1`, terminal 0.0) and
            `text_times` (length `N + 1`, from 0 to 1; float64 except on MPS). Resets the step indices.
        """
        if not is_int(num_inference_steps) or num_inference_steps <= 0:
            raise ValueError(f"num_inference_steps must be a positive int, got {num_inference_steps!r}")
        if text_time_schedule not in TEXT_TIME_SCHEDULES:
            raise ValueError(f"text_time_schedule must be one of {TEXT_TIME_SCHEDULES}, got {text_time_schedule!r}")
        num_train_timesteps = self.config.num_train_timesteps
        self.num_inference_steps = num_inference_steps

        if self.config.video_sigma_schedule == "flow_match_euler":
            # Same operations (and dtypes) as FlowMatchEulerDiscreteScheduler.set_timesteps with default arguments.
            timesteps = np.linspace(
                self.sigma_max * num_train_timesteps, self.sigma_min * num_train_timesteps, num_inference_steps
            )
            sigmas = shifted_sigmas(timesteps / num_train_timesteps, self.shift)
            sigmas = torch.from_numpy(sigmas).to(dtype=torch.float32, device=device)
        else:
            # DiffSynth FlowMatchScheduler(sigma_min=0, extra_one_step=True), as in the released Uni-ViGU inference.
            sigmas = shifted_sigmas(torch.linspace(1.0, 0.0, num_inference_steps + 1)[:-1], self.shift)
            sigmas = sigmas.to(dtype=torch.float32, device=device)
        timesteps = sigmas * num_train_timesteps
        sigmas = torch.cat([sigmas, torch.zeros(1, device=sigmas.device)])

        text_dtype = torch.float32 if sigmas.device.type == "mps" else torch.float64
        if text_time_schedule == "uniform":
            text_times = torch.linspace(0.0, 1.0, num_inference_steps + 1, dtype=text_dtype, device=sigmas.device)
        else:
            text_times = 1.0 - sigmas.to(text_dtype)

        self.timesteps = timesteps
        self.sigmas = sigmas
        self.text_times = text_times
        self.text_time_schedule = text_time_schedule
        self._step_index = None
        self._begin_index = None

    def index_for_timestep(
        self, timestep: float | torch.Tensor, schedule_timesteps: torch.Tensor | None = None
    ) -> int:
        """
        Gets the index of a timestep in the schedule (as [`FlowMatchEulerDiscreteScheduler`] does).

        Args:
            timestep (`float` or `torch.Tensor`):
                The timestep to find.
            schedule_timesteps (`torch.Tensor`, *optional*):
                The schedule to search. If `None`, `self.timesteps` is used.

        Returns:
            `int`: The index. When the timestep occurs more than once, the second occurrence is returned so that a
            schedule that starts in the middle (image-to-image) does not skip a sigma.
        """
        if schedule_timesteps is None:
            schedule_timesteps = self.timesteps
        indices = (schedule_timesteps == timestep).nonzero()
        if len(indices) == 0:
            raise ValueError(
                f"timestep must be one of `scheduler.timesteps`, got {timestep!r}; call `set_timesteps` and pass its "
                "timesteps, or use `set_begin_index`"
            )
        pos = 1 if len(indices) > 1 else 0
        return indices[pos].item()

    def _init_step_index(self, timestep: float | torch.Tensor) -> None:
        if self.begin_index is None:
            if isinstance(timestep, torch.Tensor):
                timestep = timestep.to(self.timesteps.device)
            self._step_index = self.index_for_timestep(timestep)
        else:
            self._step_index = self._begin_index

    def step(
        self,
        model_output: torch.Tensor,
        timestep: float | torch.Tensor,
        sample: torch.Tensor,
        return_dict: bool = True,
        generator: torch.Generator | None = None,
    ) -> UniFlowSchedulerOutput | tuple:
        """
        One Euler step of the video flow ODE, `x <- x + v * (sigma_next - sigma)`. Identical to
        [`FlowMatchEulerDiscreteScheduler.step`] (deterministic sampling, no per-token timesteps).

        Args:
            model_output (`torch.Tensor`):
                The predicted velocity `noise - x0`.
            timestep (`float` or `torch.Tensor`):
                The current timestep, one of `scheduler.timesteps` (integer indices are rejected).
            sample (`torch.Tensor`):
                The current sample `x_sigma`.
            return_dict (`bool`, defaults to `True`):
                Whether to return a [`UniFlowSchedulerOutput`] or a tuple.
            generator (`torch.Generator`, *optional*):
                Unused (the Euler step is deterministic); accepted for API compatibility.

        Returns:
            [`UniFlowSchedulerOutput`] or `tuple`: The next sample, computed in float32 and cast back to the dtype of
            `model_output`. If `return_dict` is `False`, a tuple whose first element is the sample.
        """
        if isinstance(timestep, (int, torch.IntTensor, torch.LongTensor)):
            raise ValueError(
                "timestep must be one of `scheduler.timesteps`, got an integer index; passing integer indices (e.g. "
                "from `enumerate(timesteps)`) to `UniFlowScheduler.step()` is not supported."
            )
        if self.step_index is None:
            self._init_step_index(timestep)

        # Upcast to avoid precision issues when computing prev_sample (same as diffusers).
        sample = sample.to(torch.float32)
        sigma = self.sigmas[self.step_index]
        sigma_next = self.sigmas[self.step_index + 1]
        prev_sample = sample + (sigma_next - sigma) * model_output

        self._step_index += 1
        prev_sample = prev_sample.to(model_output.dtype)

        if not return_dict:
            return (prev_sample,)
        return UniFlowSchedulerOutput(prev_sample=prev_sample)

    def scale_noise(
        self, sample: torch.Tensor, timestep: float | torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """
        Forward process at a scheduled timestep, as [`FlowMatchEulerDiscreteScheduler.scale_noise`]:
        `sigma * noise + (1 - sigma) * sample` with `sigma` looked up from `timestep` (used by video-to-video
        pipelines). For training, prefer [`~UniFlowScheduler.add_noise`], which takes sigmas directly.

        Args:
            sample (`torch.Tensor`):
                The clean sample.
            timestep (`torch.Tensor`):
                1-D tensor of timesteps from `scheduler.timesteps`, one per batch element.
            noise (`torch.Tensor`):
                The noise tensor, same shape as `sample`.

        Returns:
            `torch.Tensor`: The noisy sample.
        """
        if noise is None:
            raise ValueError("noise must be a tensor with the shape of `sample`, got None")
        sigmas = self.sigmas.to(device=sample.device, dtype=sample.dtype)
        if sample.device.type == "mps" and torch.is_floating_point(timestep):
            schedule_timesteps = self.timesteps.to(sample.device, dtype=torch.float32)
            timestep = timestep.to(sample.device, dtype=torch.float32)
        else:
            schedule_timesteps = self.timesteps.to(sample.device)
            timestep = timestep.to(sample.device)

        if self.begin_index is None:
            step_indices = [self.index_for_timestep(t, schedule_timesteps) for t in timestep]
        elif self.step_index is not None:
            step_indices = [self.step_index] * timestep.shape[0]
        else:
            step_indices = [self.begin_index] * timestep.shape[0]

        sigma = sigmas[step_indices].flatten()
        while len(sigma.shape) < len(sample.shape):
            sigma = sigma.unsqueeze(-1)
        return sigma * noise + (1.0 - sigma) * sample

    # ------------------------------------------------------------------------------------------------------------
    # Video: training
    # ------------------------------------------------------------------------------------------------------------

    @staticmethod
    def _per_sample(values: torch.Tensor, batch_size: int, ndim: int, name: str) -> torch.Tensor:
        """Reshapes a 0-d or [B] tensor to [B or 1, 1, ..., 1] (ndim dims) for broadcasting over a batch."""
        if values.ndim == 0:
            return values.reshape([1] * ndim)
        if values.ndim != 1 or values.shape[0] != batch_size:
            raise ValueError(
                f"{name} must be a float, a 0-d tensor or a 1-D tensor of length batch_size={batch_size}, "
                f"got shape {tuple(values.shape)}"
            )
        return values.reshape([batch_size] + [1] * (ndim - 1))

    @staticmethod
    def _check_sigmas(sigmas: float | torch.Tensor) -> None:
        """Refuses sigmas outside `[0, 1]` (typically timesteps on the 0..1000 scale), where they are given."""
        if isinstance(sigmas, torch.Tensor):
            # One reduction where the sigmas live (usually the CPU, as `sample_video_sigmas` draws them); skipped
            # while compiling, where a data-dependent branch would break the graph.
            if torch.compiler.is_compiling() or sigmas.numel() == 0:
                return
            values = sigmas if sigmas.is_floating_point() else sigmas.double()
            inside = (values >= 0) & (values <= 1)  # NaN is outside
            if bool(inside.all()):
                return
            outside = values[~inside]
            got = f"{outside[0].item():g}"
            if values.numel() > 1:
                got = f"{outside.numel()} of {values.numel()} values outside it, e.g. {got}"
        elif is_real(sigmas):
            if 0 <= sigmas <= 1:
                return
            got = f"{sigmas!r}"
        else:
            return  # anything else fails in `torch.as_tensor` with torch's own message
        raise ValueError(
            f"sigmas must be noise levels in [0, 1], got {got}. add_noise takes sigmas, not timesteps: for "
            "timesteps on the 0..num_train_timesteps scale (e.g. `scheduler.timesteps`) use "
            "`scheduler.scale_noise(sample, timestep, noise)` or convert them with `scheduler.timestep_to_sigma`."
        )

    def add_noise(
        self, original_samples: torch.Tensor, noise: torch.Tensor, sigmas: float | torch.Tensor
    ) -> torch.Tensor:
        """
        Forward (noising) process of the video flow, `x_s = (1 - s) * x0 + s * noise`. This is
        [`FlowMatchEulerDiscreteScheduler.scale_noise`]`(sample=x0, timestep, noise)` with the sigma given directly
        instead of being looked up from a scheduled timestep (`sigma = timestep / num_train_timesteps`).

        Args:
            original_samples (`torch.Tensor`):
                Clean samples `x0` of shape `(batch_size, ...)`.
            noise (`torch.Tensor`):
                Gaussian noise, same shape as `original_samples`.
            sigmas (`float` or `torch.Tensor`):
                Noise level(s) in `[0, 1]` (already shifted): a float, a 0-d tensor or a `(batch_size,)` tensor; it is
                broadcast over the trailing dims. Not timesteps: values outside `[0, 1]` (e.g. `scheduler.timesteps`
                on the 0..1000 scale, as diffusers' DDPM-style training scripts pass) raise a `ValueError`; convert
                them with [`~UniFlowScheduler.timestep_to_sigma`] or use [`~UniFlowScheduler.scale_noise`].

        Returns:
            `torch.Tensor`: The noisy samples, in the dtype of `original_samples`.

        Raises:
            `ValueError`: If a sigma lies outside `[0, 1]` or is NaN (not checked while compiling: the check would
            break the graph), or if the shapes do not match.
        """
        if noise.shape != original_samples.shape:
            raise ValueError(
                f"noise must have the shape of original_samples {tuple(original_samples.shape)}, "
                f"got {tuple(noise.shape)}"
            )
        self._check_sigmas(sigmas)
        sigmas = torch.as_tensor(sigmas).to(device=original_samples.device, dtype=original_samples.dtype)
        if original_samples.ndim == 0:
            raise ValueError("original_samples must have a batch dimension, got a 0-d tensor")
        sigmas = self._per_sample(sigmas, original_samples.shape[0], original_samples.ndim, "sigmas")
        noise = noise.to(device=original_samples.device, dtype=original_samples.dtype)
        return sigmas * noise + (1.0 - sigmas) * original_samples

    def get_velocity_target(self, original_samples: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """
        Training target of the video stream, the flow velocity `noise - x0`.

        Args:
            original_samples (`torch.Tensor`):
                Clean samples `x0`.
            noise (`torch.Tensor`):
                The noise used in [`~UniFlowScheduler.add_noise`], same shape.

        Returns:
            `torch.Tensor`: `noise - original_samples`.
        """
        if noise.shape != original_samples.shape:
            raise ValueError(
                f"noise must have the shape of original_samples {tuple(original_samples.shape)}, "
                f"got {tuple(noise.shape)}"
            )
        return noise - original_samples

    def sample_video_sigmas(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        device: str | torch.device | None = None,
        mode: str = "shifted_uniform",
        logit_mean: float = 0.0,
        logit_std: float = 1.0,
        shift: float | None = None,
    ) -> torch.Tensor:
        """
        Draws training noise levels for the video stream.

        Args:
            batch_size (`int`):
                Number of sigmas to draw.
            generator (`torch.Generator`, *optional*):
                Source of randomness (draws happen on its device, then move to `device`).
            device (`str` or `torch.device`, *optional*):
                Output device (defaults to the generator's device, else CPU).
            mode (`str`, defaults to `"shifted_uniform"`):
                `"uniform"`: `s ~ U(0, 1)`; `"shifted_uniform"`: `U(0, 1)` then the shift map (Wan / DiffSynth style);
                `"logit_normal"`: `sigmoid(N(logit_mean, logit_std))` then the shift map.
            logit_mean (`float`, defaults to 0.0):
                Mean of the normal for `"logit_normal"`.
            logit_std (`float`, defaults to 1.0):
                Standard deviation of the normal for `"logit_normal"`.
            shift (`float`, *optional*):
                Shift of the shifted modes; `None` uses the scheduler's (`self.shift`).

        Returns:
            `torch.FloatTensor`: float32 sigmas of shape `(batch_size,)` in `[0, 1]`; use
            [`~UniFlowScheduler.sigma_to_timestep`] for the model timesteps.
        """
        if not is_int(batch_size) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if mode not in VIDEO_SIGMA_SAMPLING_MODES:
            raise ValueError(f"mode must be one of {VIDEO_SIGMA_SAMPLING_MODES}, got {mode!r}")
        if mode == "logit_normal" and (not is_real(logit_std) or not logit_std > 0):
            raise ValueError(f"logit_std must be a positive float, got {logit_std!r}")
        rand_device = random_device(generator, device)
        out_device = torch.device(device) if device is not None else rand_device
        if mode == "logit_normal":
            normal = torch.randn(batch_size, generator=generator, device=rand_device, dtype=torch.float32)
            sigmas = torch.sigmoid(normal * logit_std + logit_mean)
        else:
            sigmas = torch.rand(batch_size, generator=generator, device=rand_device, dtype=torch.float32)
        if shift is not None and (not is_real(shift) or not math.isfinite(shift) or shift <= 0):
            raise ValueError(f"shift must be None or a positive finite float, got {shift!r}")
        if mode != "uniform":
            sigmas = self.shift_sigmas(sigmas, shift)
        return sigmas.to(out_device)
