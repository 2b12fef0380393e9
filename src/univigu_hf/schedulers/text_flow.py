"""The discrete text flow of [`UniFlowScheduler`]: a mixture path between source tokens and the caption.

At text time `t` (0 = source noise, 1 = data) every token equals the clean token with probability `kappa(t) = t**n` and
a source token otherwise (uniform random ids or a mask id). The model returns logits for the clean token;
[`~UniFlowScheduler.step_text`] performs one discrete Euler jump of the corresponding continuous-time Markov chain.
The methods live in a mixin so that the scheduler's file stays readable; they use the scheduler's config
(`text_source`, `text_kappa_exponent`, `text_vocab_size`, `mask_token_id`, `text_final_step`) and its `text_times`.
"""

import math
from dataclasses import dataclass

import torch
from diffusers.utils import BaseOutput, logging

from ..utils.checks import all_finite, is_int, is_real
from ..utils.torch_utils import as_float_tensor, random_device
from .text_decoding import check_text_committed, check_text_decoding, confidence_commit


logger = logging.get_logger(__name__)

TEXT_SOURCES = ("uniform", "mask")
TEXT_FINAL_STEPS = ("argmax", "sample")

# Tolerance used to decide that a text step reaches the data end (t + h >= 1).
_TEXT_TIME_EPS = 1e-6


@dataclass
class UniFlowTextSchedulerOutput(BaseOutput):
    """
    Output class for [`UniFlowScheduler.step_text`] (the text stream).

    Args:
        prev_text_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`):
            The token ids at the next text time `t + h`, to be used as the next model input (or, after the final step,
            the generated text).
        pred_original_text_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`):
            The argmax of the logits, i.e. the model's current guess of the clean text.
        text_committed (`torch.BoolTensor` of shape `(batch_size, sequence_length)`, *optional*):
            With `text_decoding="confidence"`, the positions committed so far (fixed from now on); pass it back to the
            next `step_text` call. All `True` once every position is committed: the caption is final. `None` with
            `text_decoding="euler"`.
    """

    prev_text_ids: torch.LongTensor
    pred_original_text_ids: torch.LongTensor
    text_committed: torch.BoolTensor | None = None


class DiscreteTextFlowMixin:
    """Text-stream methods of [`UniFlowScheduler`] (training noise, source tokens, the discrete Euler step)."""

    @staticmethod
    def _check_text_config(
        text_source: str,
        text_kappa_exponent: float,
        text_vocab_size: int | None,
        mask_token_id: int | None,
        text_final_step: str,
    ) -> None:
        """Validates the text-stream arguments of [`UniFlowScheduler`]'s constructor."""
        if text_source not in TEXT_SOURCES:
            raise ValueError(f"text_source must be one of {TEXT_SOURCES}, got {text_source!r}")
        if not is_real(text_kappa_exponent) or not math.isfinite(text_kappa_exponent) or text_kappa_exponent <= 0:
            raise ValueError(f"text_kappa_exponent must be a positive finite float, got {text_kappa_exponent!r}")
        if text_vocab_size is not None and (not is_int(text_vocab_size) or text_vocab_size <= 0):
            raise ValueError(f"text_vocab_size must be a positive int or None, got {text_vocab_size!r}")
        if mask_token_id is not None and (not is_int(mask_token_id) or mask_token_id < 0):
            raise ValueError(f"mask_token_id must be a non-negative int or None, got {mask_token_id!r}")
        if text_source == "mask" and mask_token_id is None:
            raise ValueError("mask_token_id must be set when text_source is 'mask', got None")
        if text_final_step not in TEXT_FINAL_STEPS:
            raise ValueError(f"text_final_step must be one of {TEXT_FINAL_STEPS}, got {text_final_step!r}")

    def register_to_config(self, **kwargs):
        """[`ConfigMixin.register_to_config`] that refuses a bad `text_decoding` / `text_confidence_threshold` (the
        constructor registers its arguments through it, so this also checks `UniFlowScheduler(...)` and
        `from_config`)."""
        if "text_decoding" in kwargs or "text_confidence_threshold" in kwargs:
            current = getattr(self, "_internal_dict", {})
            check_text_decoding(
                kwargs.get("text_decoding", current.get("text_decoding", "euler")),
                kwargs.get("text_confidence_threshold", current.get("text_confidence_threshold", 0.9)),
            )
        super().register_to_config(**kwargs)

    def kappa(self, t: float | torch.Tensor) -> torch.Tensor:
        """
        Mixture schedule `kappa(t) = t**n` (probability that a token is clean at text time `t`).

        Args:
            t (`float` or `torch.Tensor`):
                Text time(s) in `[0, 1]`.

        Returns:
            `torch.Tensor`: `kappa(t)`.
        """
        return as_float_tensor(t) ** self.config.text_kappa_exponent

    def kappa_derivative(self, t: float | torch.Tensor) -> torch.Tensor:
        """
        Time derivative of the mixture schedule, `kappa'(t) = n * t**(n - 1)`.

        Args:
            t (`float` or `torch.Tensor`):
                Text time(s) in `[0, 1]`.

        Returns:
            `torch.Tensor`: `kappa'(t)` (infinite at `t = 0` when `n < 1`).
        """
        n = self.config.text_kappa_exponent
        return n * as_float_tensor(t) ** (n - 1)

    def text_time_to_timestep(self, text_time: float | torch.Tensor) -> torch.Tensor:
        """
        Maps the text flow time `t` (0 = source noise, 1 = data) to the timestep the model sees for the text stream,
        `round((1 - t) * num_train_timesteps)` clamped to `[0, num_train_timesteps]` (the Uni-ViGU training map).

        Args:
            text_time (`float` or `torch.Tensor`):
                Text flow time(s).

        Returns:
            `torch.FloatTensor`: The float32 timesteps (integral values), same shape as `text_time`.
        """
        num_train_timesteps = self.config.num_train_timesteps
        t = torch.as_tensor(text_time)
        dtype = torch.float32 if t.device.type == "mps" else torch.float64
        timestep = torch.round((1.0 - t.to(dtype)) * num_train_timesteps).clamp(0, num_train_timesteps)
        return timestep.to(torch.float32)

    def timestep_to_text_time(self, timestep: float | torch.Tensor) -> torch.Tensor:
        """
        Inverse of [`~UniFlowScheduler.text_time_to_timestep`] (up to rounding): `t = 1 - timestep / num_train_timesteps`.

        Args:
            timestep (`float` or `torch.Tensor`):
                Text-stream timestep(s) in `[0, num_train_timesteps]`.

        Returns:
            `torch.Tensor`: The text time(s) in `[0, 1]`.
        """
        return 1.0 - as_float_tensor(timestep) / self.config.num_train_timesteps

    def sample_text_source(
        self,
        shape: tuple[int, ...] | torch.Size,
        generator: torch.Generator | None = None,
        device: str | torch.device | None = None,
    ) -> torch.LongTensor:
        """
        Draws source (pure-noise, `t = 0`) text tokens.

        Args:
            shape (`tuple[int, ...]`):
                Shape of the token tensor, e.g. `(batch_size, sequence_length)`.
            generator (`torch.Generator`, *optional*):
                Source of randomness for the uniform source (draws happen on its device, then move to `device`).
            device (`str` or `torch.device`, *optional*):
                Output device (defaults to the generator's device, else CPU).

        Returns:
            `torch.LongTensor`: Uniform random ids in `[0, text_vocab_size)` (`text_source="uniform"`) or a tensor
            filled with `mask_token_id` (`text_source="mask"`).
        """
        shape = tuple(shape)
        rand_device = random_device(generator, device)
        out_device = torch.device(device) if device is not None else rand_device
        if self.config.text_source == "mask":
            if self.config.mask_token_id is None:
                raise ValueError("mask_token_id must be set to draw mask source tokens, got None")
            return torch.full(shape, self.config.mask_token_id, dtype=torch.long, device=out_device)
        if self.config.text_vocab_size is None:
            raise ValueError(
                "text_vocab_size must be set to draw uniform source tokens, got None: build the scheduler with "
                "UniFlowScheduler(text_vocab_size=...) (a UniViGUPipeline sets it from its transformer)"
            )
        ids = torch.randint(
            0, self.config.text_vocab_size, shape, generator=generator, device=rand_device, dtype=torch.long
        )
        return ids.to(out_device)

    def _validate_text_time(
        self, text_time: float | torch.Tensor, batch_size: int, device: torch.device, name: str = "text_time"
    ) -> torch.Tensor:
        """Returns the text time(s) as a float64 tensor of shape [batch_size] on `device` after validation."""
        if isinstance(text_time, torch.Tensor):
            if text_time.dtype == torch.bool or torch.is_complex(text_time):
                raise TypeError(f"{name} must be a float or a real tensor, got dtype {text_time.dtype}")
        elif not is_real(text_time):
            raise TypeError(f"{name} must be a float or a tensor, got {type(text_time).__name__}")
        dtype = torch.float32 if device.type == "mps" else torch.float64
        t = torch.as_tensor(text_time).to(device=device, dtype=dtype)
        if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != batch_size):
            raise ValueError(
                f"{name} must be a float, a 0-d tensor or a 1-D tensor of length batch_size={batch_size}, "
                f"got shape {tuple(t.shape)}"
            )
        if bool(((t < 0) | (t > 1) | torch.isnan(t)).any()):
            raise ValueError(f"{name} must lie in [0, 1], got values in [{t.min().item()}, {t.max().item()}]")
        return t.expand(batch_size) if t.ndim == 0 else t

    @staticmethod
    def _validate_text_ids(text_ids: torch.Tensor, name: str = "text_ids") -> None:
        if not isinstance(text_ids, torch.Tensor):
            raise TypeError(f"{name} must be an integer torch.Tensor, got {type(text_ids).__name__}")
        if text_ids.dtype == torch.bool or text_ids.is_floating_point() or text_ids.is_complex():
            raise TypeError(f"{name} must be an integer (long) tensor, got dtype {text_ids.dtype}")
        if text_ids.ndim < 1:
            raise ValueError(f"{name} must have a batch dimension, got a 0-d tensor")

    def add_noise_text(
        self,
        text_ids: torch.LongTensor,
        text_time: float | torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.LongTensor:
        """
        Samples the mixture path `x_t`: each token is independently kept with probability `kappa(t)` and replaced by a
        source token otherwise.

        Args:
            text_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`):
                Clean token ids (any shape with a leading batch dimension works).
            text_time (`float` or `torch.Tensor`):
                Text time(s) in `[0, 1]`: a float, a 0-d tensor or a `(batch_size,)` tensor.
            generator (`torch.Generator`, *optional*):
                Source of all randomness (source tokens first, then the keep mask). Draws happen on the generator's
                device and are moved to the device of `text_ids`.

        Returns:
            `torch.LongTensor`: The noisy ids, same shape and device as `text_ids`. Feed the model
            [`~UniFlowScheduler.text_time_to_timestep`]`(text_time)` and train the logits with cross-entropy against
            `text_ids`.
        """
        self._validate_text_ids(text_ids)
        batch_size = text_ids.shape[0]
        t = self._validate_text_time(text_time, batch_size, text_ids.device)
        keep_prob = self.kappa(t).reshape([batch_size] + [1] * (text_ids.ndim - 1))

        rand_device = random_device(generator, text_ids.device)
        source = self.sample_text_source(text_ids.shape, generator=generator, device=text_ids.device)
        u = torch.rand(text_ids.shape, generator=generator, device=rand_device, dtype=keep_prob.dtype)
        keep = u.to(text_ids.device) < keep_prob
        return torch.where(keep, text_ids.long(), source)

    def sample_text_times(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """
        Draws training text times `t ~ U[0, 1)`.

        Args:
            batch_size (`int`):
                Number of times to draw.
            generator (`torch.Generator`, *optional*):
                Source of randomness (draws happen on its device, then move to `device`).
            device (`str` or `torch.device`, *optional*):
                Output device (defaults to the generator's device, else CPU).
            dtype (`torch.dtype`, defaults to `torch.float32`):
                Floating dtype of the draw (the training loss draws float64, the precision of the text step).

        Returns:
            `torch.FloatTensor`: text times of shape `(batch_size,)`.
        """
        if not is_int(batch_size) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        rand_device = random_device(generator, device)
        out_device = torch.device(device) if device is not None else rand_device
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        t = torch.rand(batch_size, generator=generator, device=rand_device, dtype=dtype)
        return t.to(out_device)

    def _next_text_time(self, t: torch.Tensor) -> torch.Tensor:
        """Next point of `self.text_times` after the grid point nearest to each entry of `t`."""
        if self.text_times is None:
            raise ValueError(
                "next_text_time must be given when `set_timesteps` has not been called (no text_times grid); call "
                "`scheduler.set_timesteps(num_inference_steps)` first"
            )
        grid = self.text_times.to(device=t.device, dtype=t.dtype)
        distance = (grid[None, :] - t[:, None]).abs()
        index = distance.argmin(dim=1)
        off_grid = distance.gather(1, index[:, None]).max().item()
        if off_grid > 1e-4:
            logger.warning(
                f"text_time is {off_grid:.3g} away from the nearest point of `scheduler.text_times`; the next grid "
                "point after the nearest one is used. Pass `next_text_time` to control the step size."
            )
        return grid[(index + 1).clamp(max=grid.shape[0] - 1)]

    def _multinomial(self, probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Draws one category per row of `probs` [..., V] with torch.multinomial on the generator's device."""
        flat = probs.reshape(-1, probs.shape[-1])
        if generator is not None and generator.device != flat.device:
            logger.warning(
                f"The generator is on {generator.device} while the logits are on {flat.device}; the probabilities are "
                "moved to the generator's device for sampling, which is slow. Pass a generator on the logits' device."
            )
            flat = flat.to(generator.device)
        draws = torch.multinomial(flat, num_samples=1, replacement=True, generator=generator)
        return draws.to(probs.device).reshape(probs.shape[:-1])

    def step_text(
        self,
        text_logits: torch.Tensor,
        text_time: float | torch.Tensor,
        text_ids: torch.LongTensor,
        generator: torch.Generator | None = None,
        next_text_time: float | torch.Tensor | None = None,
        return_dict: bool = True,
        text_committed: torch.BoolTensor | None = None,
    ) -> UniFlowTextSchedulerOutput | tuple:
        """
        One discrete Euler step of the mixture-path flow from text time `t` to `t + h`.

        Each token jumps with probability `min(1, h * kappa'(t) / (1 - kappa(t)))` to a clean-token guess
        `x1 ~ softmax(text_logits)` (float64), drawn only for the tokens that jump (tokens only ever change to the
        sampled `x1`). At the final step (`t + h >= 1`) the result is the argmax of the logits
        (`text_final_step="argmax"`) or the sample `x1` (`"sample"`).

        Args:
            text_logits (`torch.Tensor` of shape `(batch_size, sequence_length, vocab_size)`):
                Model logits for the clean tokens.
            text_time (`float` or `torch.Tensor`):
                Current text time `t` in `[0, 1]`: a float, a 0-d tensor or a `(batch_size,)` tensor.
            text_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`):
                Current tokens `x_t` (ids must be `< vocab_size` of the logits).
            generator (`torch.Generator`, *optional*):
                Source of all randomness (the jump mask first, then `x1` where tokens jump).
            next_text_time (`float` or `torch.Tensor`, *optional*):
                Target time `t + h` in `[t, 1]`. If `None`, the point of `scheduler.text_times` after the one nearest
                to `t` (requires [`~UniFlowScheduler.set_timesteps`]).
            return_dict (`bool`, defaults to `True`):
                Whether to return a [`UniFlowTextSchedulerOutput`] or a tuple.
            text_committed (`torch.BoolTensor` of shape `(batch_size, sequence_length)`, *optional*):
                With `text_decoding="confidence"`: the `text_committed` of the previous call (`None` at the first
                step: nothing committed). Refused with `text_decoding="euler"`.

        Returns:
            [`UniFlowTextSchedulerOutput`] or `tuple`: `prev_text_ids` (tokens at `t + h`), `pred_original_text_ids`
            (argmax of the logits) and `text_committed` (confidence decoding only). If `return_dict` is `False`, the
            tuple `(prev_text_ids, pred_original_text_ids)`, plus `text_committed` with confidence decoding.
        """
        confidence = self.config.text_decoding == "confidence"
        if text_committed is not None and not confidence:
            raise ValueError(
                "text_committed is only used with text_decoding='confidence', got a mask while this scheduler has "
                f"text_decoding={self.config.text_decoding!r}"
            )
        if not isinstance(text_logits, torch.Tensor) or not text_logits.is_floating_point():
            raise TypeError("text_logits must be a floating-point torch.Tensor of shape (batch_size, seq_len, vocab)")
        if text_logits.ndim != 3:
            raise ValueError(
                f"text_logits must have shape (batch_size, sequence_length, vocab_size), got {tuple(text_logits.shape)}"
            )
        self._validate_text_ids(text_ids)
        if tuple(text_ids.shape) != tuple(text_logits.shape[:2]):
            raise ValueError(
                f"text_ids must have shape {tuple(text_logits.shape[:2])} to match text_logits "
                f"{tuple(text_logits.shape)}, got {tuple(text_ids.shape)}"
            )
        batch_size, _, vocab_size = text_logits.shape
        if vocab_size == 0:
            raise ValueError("text_logits must have a vocabulary dimension of at least 1, got shape (..., 0)")
        if not all_finite(text_logits):
            finite = torch.isfinite(text_logits)
            nan_or_posinf = torch.isnan(text_logits) | torch.isposinf(text_logits)
            if bool(nan_or_posinf.any()) or not bool(finite.any(dim=-1).all()):
                raise ValueError(
                    "text_logits must be finite (or -inf for a token that is ruled out, with at least one finite "
                    f"value per position); got {int(nan_or_posinf.sum())} NaN/+inf values and "
                    f"{int((~finite.any(dim=-1)).sum())} positions without a finite logit. The model produced them: "
                    "float16 activations can overflow (use bfloat16 or float32), or the weights diverged in training."
                )
        device = text_logits.device
        text_ids = text_ids.to(device=device, dtype=torch.long)
        if text_ids.numel() > 0 and bool(((text_ids < 0) | (text_ids >= vocab_size)).any()):
            raise ValueError(
                f"text_ids must lie in [0, vocab_size={vocab_size}) of text_logits, got values in "
                f"[{text_ids.min().item()}, {text_ids.max().item()}]"
            )
        committed = check_text_committed(text_committed, text_ids) if confidence else None
        t = self._validate_text_time(text_time, batch_size, device)
        if next_text_time is None:
            t_next = self._next_text_time(t)
        else:
            t_next = self._validate_text_time(next_text_time, batch_size, device, name="next_text_time")
            if bool((t_next < t).any()):
                raise ValueError(
                    f"next_text_time must be >= text_time, got next_text_time={t_next.tolist()} < text_time={t.tolist()}"
                )

        pred_original = text_logits.argmax(dim=-1)
        is_final = t_next >= 1.0 - _TEXT_TIME_EPS
        all_final = bool(is_final.all())

        if all_final and self.config.text_final_step == "argmax":
            prev_text_ids = pred_original
        else:
            h = t_next - t
            one_minus_kappa = 1.0 - self.kappa(t)
            rate = h * self.kappa_derivative(t) / one_minus_kappa.clamp_min(torch.finfo(t.dtype).tiny)
            # kappa(t) == 1 only at t == 1 (h == 0 there); 0 * inf -> nan means "no move".
            rate = torch.where(one_minus_kappa > 0, rate, (h > 0).to(t.dtype))
            jump_prob = torch.nan_to_num(rate, nan=0.0, posinf=1.0).clamp(0.0, 1.0)

            rand_device = random_device(generator, device)
            u = torch.rand(text_ids.shape, generator=generator, device=rand_device, dtype=jump_prob.dtype)
            jump = u.to(device) < jump_prob[:, None]
            # x1 is only ever used where a token jumps (or, with "sample", on final rows): drawing it there alone
            # gives the same distribution as drawing it everywhere, at a fraction of the cost late in sampling.
            final_rows = is_final[:, None].expand_as(jump)
            if self.config.text_final_step == "argmax":
                prev_text_ids = torch.where(final_rows, pred_original, text_ids)
                draw = jump & ~final_rows
            else:
                prev_text_ids = text_ids.clone()
                draw = jump | final_rows
            if bool(draw.any()):
                probs = torch.softmax(text_logits[draw].to(torch.float64), dim=-1)
                prev_text_ids[draw] = self._multinomial(probs, generator)

        if not confidence:
            if not return_dict:
                return (prev_text_ids, pred_original)
            return UniFlowTextSchedulerOutput(prev_text_ids=prev_text_ids, pred_original_text_ids=pred_original)
        threshold = self.config.text_confidence_threshold
        prev_text_ids, committed = confidence_commit(
            text_logits, text_ids, prev_text_ids, committed, is_final, threshold
        )
        if not return_dict:
            return (prev_text_ids, pred_original, committed)
        return UniFlowTextSchedulerOutput(
            prev_text_ids=prev_text_ids, pred_original_text_ids=pred_original, text_committed=committed
        )
