"""MagCache calibration: the magnitude ratios diffusers' `MagCacheConfig` needs for a model, measured by running the
pipeline (see docs/scaling.md). It drives a whole `UniViGUPipeline` call, so it sits with the pipeline rather than
with the model's toolbox (`models/diffusers_toolbox.py`), which only opts the model into diffusers' hooks."""

import contextlib
import io
import json
import logging


def calibrate_mag_ratios(
    pipe, prompts: list[str], num_inference_steps: int, generator=None, **call_kwargs
) -> list[float]:
    """
    Measures MagCache's magnitude ratios for a pipeline: runs text-to-video on `prompts` with
    `MagCacheConfig(calibrate=True)` (nothing is skipped) and averages, step by step, the ratios diffusers' hook reports
    for every call (the conditional and the unconditional pass of each prompt).

    Args:
        pipe ([`UniViGUPipeline`]): the pipeline (its transformer must have no cache enabled).
        prompts (`list[str]`): calibration prompts.
        num_inference_steps (`int`): the steps the ratios are for (`MagCacheConfig(num_inference_steps=...)`
            interpolates them to other step counts).
        generator (`torch.Generator` or `list[torch.Generator]`, *optional*): the noise of every run, or one
            generator per prompt.
        **call_kwargs: more arguments of the pipeline call (`guidance_scale`, sizes, ...).

    Returns:
        `list[float]`: `num_inference_steps` ratios for `MagCacheConfig(mag_ratios=...)`.
    """
    from diffusers import MagCacheConfig

    runs = []

    class Collect(logging.Handler):
        def emit(self, record):
            message = record.getMessage()
            if message.startswith("MagCache Calibration Results: "):
                runs.append(json.loads(message.split(": ", 1)[1]))

    hook_logger = logging.getLogger("diffusers.hooks.mag_cache")
    handler, level, propagate = Collect(), hook_logger.level, hook_logger.propagate
    hook_logger.addHandler(handler)
    hook_logger.setLevel(logging.INFO)
    hook_logger.propagate = False  # collected here, not printed
    pipe.transformer.enable_cache(MagCacheConfig(calibrate=True, num_inference_steps=num_inference_steps))
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the hook also prints its results
            generators = generator if isinstance(generator, (list, tuple)) else [generator] * len(prompts)
            if len(generators) != len(prompts):
                raise ValueError(
                    f"generator list has {len(generators)} generators for {len(prompts)} prompts; accepted: one "
                    "generator, or one per prompt"
                )
            for prompt, prompt_generator in zip(prompts, generators):
                pipe(
                    prompt=prompt,
                    num_inference_steps=num_inference_steps,
                    generator=prompt_generator,
                    output_type="latent",
                    **call_kwargs,
                )
    finally:
        pipe.transformer.disable_cache()
        hook_logger.removeHandler(handler)
        hook_logger.setLevel(level)
        hook_logger.propagate = propagate
    if not runs or any(len(run) != num_inference_steps for run in runs):
        raise RuntimeError(f"MagCache calibration reported {[len(run) for run in runs]} ratios per run")
    return [round(sum(values) / len(values), 5) for values in zip(*runs)]


__all__ = ["calibrate_mag_ratios"]
