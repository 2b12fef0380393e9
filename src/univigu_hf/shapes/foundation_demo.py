"""`univigu demo --foundation`: the unified model grown from a tiny, randomly initialised Wan transformer, checked for
prior preservation and run in all three modes with the real scheduler (random weights: the outputs carry no meaning).

It lives with the other demo (`demo.py`, the embedded shapes-world model) because only the `univigu demo` command
runs it; the library never imports the demo package.
"""

import time

import torch
from diffusers import WanTransformer3DModel

from .. import __version__
from ..models import UniViGUModel
from ..schedulers import UniFlowScheduler
from ..testing import tiny_wan_config


FOUNDATION_STEPS = 8  # denoising steps per mode of `univigu demo --foundation`


def foundation_demo(seed: int = 0, steps: int | None = None, vocab_size: int = 64, text_length: int = 12) -> dict:
    """
    `univigu demo --foundation`: grows a unified model out of a tiny, randomly initialised Wan transformer, measures
    that the video prior is preserved, and runs the unified flow in all three modes with the real scheduler. The
    weights are random, so the outputs carry no meaning.

    Returns:
        `dict`: parameter counts, `prior_preservation_max_abs_diff`, the timings and the outputs of each mode.
    """
    torch.manual_seed(seed)
    wan = WanTransformer3DModel(**tiny_wan_config(attention_head_dim=16, ffn_dim=64)).eval()
    model = UniViGUModel.from_wan(wan, text_vocab_size=vocab_size, max_text_length=text_length)
    scheduler = UniFlowScheduler(shift=3.0, text_vocab_size=vocab_size)
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(1, 16, 3, 8, 8, generator=generator)
    prompt_embeds = torch.randn(1, 8, 32, generator=generator)
    report = {"univigu_hf": __version__, "wan_parameters": sum(p.numel() for p in wan.parameters())}
    report["univigu_parameters"] = sum(p.numel() for p in model.parameters())

    with torch.no_grad():
        timestep = torch.tensor([700.0])
        expected = wan(latents, timestep, prompt_embeds).sample
        got = model(video_latents=latents, video_timestep=timestep, encoder_hidden_states=prompt_embeds).video_velocity
        report["prior_preservation_max_abs_diff"] = float((expected - got).abs().max())

        start = time.perf_counter()
        steps = steps if steps is not None else FOUNDATION_STEPS
        scheduler.set_timesteps(steps)
        video = latents.clone()
        prompt_ids = torch.randint(0, vocab_size, (1, text_length), generator=generator)
        for t in scheduler.timesteps:
            velocity = model(video, prompt_ids, t[None], torch.zeros(1), prompt_embeds).video_velocity
            video = scheduler.step(velocity, t, video).prev_sample
        report["text_to_video_seconds"] = round(time.perf_counter() - start, 3)

        start = time.perf_counter()
        scheduler.set_timesteps(steps, text_time_schedule="uniform")
        text = scheduler.sample_text_source((1, text_length), generator=generator)
        for t_text in scheduler.text_times[:-1]:
            timestep = scheduler.text_time_to_timestep(t_text)[None]
            logits = model(video, text, torch.zeros(1), timestep).text_logits
            text = scheduler.step_text(logits, t_text, text, generator=generator).prev_text_ids
        report["caption_token_ids"] = " ".join(map(str, text[0].tolist()))
        report["captioning_seconds"] = round(time.perf_counter() - start, 3)

        start = time.perf_counter()
        scheduler.set_timesteps(steps, text_time_schedule="video")
        video = torch.randn(1, 16, 3, 8, 8, generator=generator)
        text = scheduler.sample_text_source((1, text_length), generator=generator)
        for t, t_text in zip(scheduler.timesteps, scheduler.text_times[:-1]):
            out = model(video, text, t[None], scheduler.text_time_to_timestep(t_text)[None], prompt_embeds)
            video = scheduler.step(out.video_velocity, t, video).prev_sample
            text = scheduler.step_text(out.text_logits, t_text, text, generator=generator).prev_text_ids
        report["joint_seconds"] = round(time.perf_counter() - start, 3)
        report["joint_video_latent_std"] = round(float(video.std()), 4)

    return report
