import inspect
import json
import os
import shutil

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import WanPipeline
from diffusers.utils import export_to_video
from transformers import AutoModel

from univigu_hf import UniViGUModel, UniViGUPipeline, UniViGUPipelineOutput
from univigu_hf.testing import TINY_VIDEO, build_tiny_pipelines


PROMPTS = ["a red circle moving left", "a large blue square moving up"]


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------------------------------
# Parity with diffusers' WanPipeline
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "prompt,negative_prompt,num_videos_per_prompt",
    [(PROMPTS[0], None, 1), (PROMPTS, "gray background", 1), (PROMPTS, ["blue", "red"], 2)],
)
def test_video_without_text_stream_reproduces_wan_pipeline(
    tiny_pipelines, prompt, negative_prompt, num_videos_per_prompt
):
    unified, wan = tiny_pipelines
    kwargs = dict(
        prompt=prompt,
        negative_prompt=negative_prompt,
        num_inference_steps=4,
        guidance_scale=5.0,  # CFG on
        num_videos_per_prompt=num_videos_per_prompt,
        **TINY_VIDEO,
    )
    expected = wan(**kwargs, generator=seeded(3)).frames
    got = unified.generate_video(**kwargs, use_text_stream=False, generator=seeded(3)).frames
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-4
    latents_wan = wan(**kwargs, generator=seeded(3), output_type="latent").frames
    latents_ours = unified.generate_video(**kwargs, use_text_stream=False, generator=seeded(3), output_type="latent")
    torch.testing.assert_close(latents_ours.frames, latents_wan, atol=1e-5, rtol=0)


def test_text_stream_is_used_by_default(tiny_pipelines):
    unified, _ = tiny_pipelines
    with_stream = unified.generate_video(PROMPTS[0], generator=seeded(), output_type="latent").frames
    without = unified.generate_video(
        PROMPTS[0], use_text_stream=False, generator=seeded(), output_type="latent"
    ).frames
    assert (with_stream - without).abs().max() > 1e-5


def test_from_wan_path(tmp_path, tiny_pipelines):
    _, wan = tiny_pipelines
    wan.save_pretrained(tmp_path / "wan")
    unified = UniViGUPipeline.from_wan(tmp_path / "wan", text_ffn_dim=16, max_text_length=10, default_height=16)
    assert unified.transformer.config.text_ffn_dim == 16
    assert unified.transformer.config.text_vocab_size == len(wan.tokenizer)
    assert unified.scheduler.config.shift == wan.scheduler.config.shift
    assert unified.config.default_height == 16
    with pytest.raises(TypeError, match="wan_pipeline_or_path must be"):
        UniViGUPipeline.from_wan(3)


def task_method(pipe, task: str):
    """The pipeline method of a task name: `"t2v"` the call, `"v2t"` `caption`, `"joint"` `generate_joint`."""
    return {"t2v": pipe, "v2t": pipe.caption, "joint": pipe.generate_joint}[task]


# ---------------------------------------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------------------------------------
def test_each_mode_is_deterministic_and_seed_dependent(tiny_pipe):
    video = tiny_pipe.generate_video(PROMPTS[0], generator=seeded(1)).frames
    for run in ("t2v", "joint", "v2t"):
        kwargs = {"video": video} if run == "v2t" else {"prompt": PROMPTS[0]}
        method = task_method(tiny_pipe, run)
        a = method(generator=seeded(5), **kwargs)
        b = method(generator=seeded(5), **kwargs)
        c = method(generator=seeded(6), **kwargs)
        assert isinstance(a, UniViGUPipelineOutput)
        if run != "v2t":
            assert np.array_equal(a.frames, b.frames) and np.abs(a.frames - c.frames).max() > 1e-4
        if run != "t2v":
            assert a.text == b.text and a.text != c.text
        assert (a.text is None) == (run == "t2v") and (a.frames is None) == (run == "v2t")


def test_generator_list_makes_captions_batch_independent(tiny_pipe):
    videos = tiny_pipe.generate_video(PROMPTS, generator=seeded(1)).frames
    batched = tiny_pipe.caption(list(videos), generator=[seeded(10), seeded(11)]).text
    alone = [tiny_pipe.caption(videos[i], generator=seeded(10 + i)).text[0] for i in range(2)]
    assert batched == alone


def test_joint_generator_list(tiny_pipe):
    out = tiny_pipe.generate_joint(PROMPTS, generator=[seeded(1), seeded(2)])
    assert out.frames.shape == (2, 5, 16, 16, 3) and len(out.text) == 2


# ---------------------------------------------------------------------------------------------------------------------
# Outputs, batching, callbacks, memory helpers
# ---------------------------------------------------------------------------------------------------------------------
def test_output_types_and_batching(tiny_pipe):
    np_out = tiny_pipe.generate_video(PROMPTS, num_videos_per_prompt=2, generator=seeded()).frames
    assert np_out.shape == (4, 5, 16, 16, 3) and np_out.min() >= 0 and np_out.max() <= 1
    pt_out = tiny_pipe.generate_video(PROMPTS[0], generator=seeded(), output_type="pt").frames
    assert pt_out.shape == (1, 5, 3, 16, 16)
    pil_out = tiny_pipe.generate_video(PROMPTS[0], generator=seeded(), output_type="pil").frames
    assert len(pil_out) == 1 and len(pil_out[0]) == 5 and isinstance(pil_out[0][0], PIL.Image.Image)
    latent = tiny_pipe.generate_video(PROMPTS[0], generator=seeded(), output_type="latent").frames
    assert latent.shape == (1, 16, 2, 2, 2)
    frames, text = tiny_pipe.generate_joint(PROMPTS[0], generator=seeded(), return_dict=False)
    assert frames.shape == (1, 5, 16, 16, 3) and isinstance(text[0], str)
    (video,) = tiny_pipe.generate_video(PROMPTS[0], generator=seeded(), return_dict=False)
    np.testing.assert_array_equal(video, tiny_pipe.generate_video(PROMPTS[0], generator=seeded()).frames)


def test_given_latents_are_used(tiny_pipe):
    latents = torch.randn(1, 16, 2, 2, 2, generator=seeded(4))
    a = tiny_pipe.generate_video(PROMPTS[0], latents=latents.clone(), output_type="latent").frames
    b = tiny_pipe.generate_video(PROMPTS[0], latents=latents.clone(), output_type="latent").frames
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_callback_on_step_end_sees_and_replaces_tensors(tiny_pipe):
    seen = []

    def callback(pipe, step, timestep, tensors):
        seen.append((step, sorted(tensors)))
        return {"latents": torch.zeros_like(tensors["latents"])} if step == 3 else {}

    out = tiny_pipe.generate_video(
        PROMPTS[0],
        generator=seeded(),
        output_type="latent",
        callback_on_step_end=callback,
        callback_on_step_end_tensor_inputs=["latents", "text_ids"],
    )
    assert [s for s, _ in seen] == [0, 1, 2, 3] and seen[0][1] == ["latents", "text_ids"]
    assert torch.count_nonzero(out.frames) == 0
    captured = []
    tiny_pipe.caption(
        out_video(tiny_pipe), generator=seeded(), callback_on_step_end=lambda p, i, t, k: captured.append(k) or {}
    )
    assert len(captured) == 4 and "text_ids" in captured[0]


def out_video(pipe):
    return pipe.generate_video(PROMPTS[0], generator=seeded()).frames


def test_joint_callback_replaces_the_caption_and_interrupt_skips_the_remaining_steps(tiny_pipe):
    eos = tiny_pipe.tokenizer.eos_token_id
    steps = []

    def end_caption_at_step_1(pipe, step, timestep, tensors):
        steps.append(step)
        pipe._interrupt = step == 1
        return {"text_ids": torch.full_like(tensors["text_ids"], eos)} if step == 1 else None

    out = tiny_pipe.generate_joint(
        PROMPTS[0],
        generator=seeded(),
        output_type="latent",
        callback_on_step_end=end_caption_at_step_1,
        callback_on_step_end_tensor_inputs=["text_ids"],
    )
    assert steps == [0, 1] and out.text == [""]
    assert tiny_pipe.generate_joint(PROMPTS[0], generator=seeded()).text != [""]  # a new call starts again


def test_check_inputs_returns_the_values_the_call_uses(tiny_pipe):
    inputs = tiny_pipe.check_inputs("a red circle", height=32, guidance_scale=2)
    assert (inputs.height, inputs.width, inputs.num_frames, inputs.num_inference_steps) == (32, 16, 5, 4)
    assert inputs.guidance_scale == 2.0 and inputs.max_text_length == tiny_pipe.transformer.config.max_text_length
    assert inputs.prompts == ["a red circle"] and inputs.callback_on_step_end_tensor_inputs == ["latents"]


def test_vae_tiling_and_slicing_passthrough(tiny_pipe):
    # Deprecated as in diffusers (whose pipelines dropped them): they warn and point to `pipe.vae`, and still work.
    with pytest.warns(FutureWarning, match="pipe.vae.enable_tiling"):
        tiny_pipe.enable_vae_tiling()
    assert tiny_pipe.vae.use_tiling
    with pytest.warns(FutureWarning, match="pipe.vae.disable_tiling"):
        tiny_pipe.disable_vae_tiling()
    assert not tiny_pipe.vae.use_tiling
    with pytest.warns(FutureWarning, match="pipe.vae.enable_slicing"):
        tiny_pipe.enable_vae_slicing()
    assert tiny_pipe.vae.use_slicing
    sliced = tiny_pipe.generate_video(PROMPTS, generator=seeded()).frames
    with pytest.warns(FutureWarning, match="pipe.vae.disable_slicing"):
        tiny_pipe.disable_vae_slicing()
    np.testing.assert_allclose(sliced, tiny_pipe.generate_video(PROMPTS, generator=seeded()).frames, atol=1e-5)


def test_defaults_come_from_the_configs(tiny_pipe):
    assert tiny_pipe.config.default_num_inference_steps == 4
    assert tiny_pipe.transformer.config.max_text_length == 12
    steps = []
    tiny_pipe.generate_joint(
        PROMPTS[0], generator=seeded(), callback_on_step_end=lambda p, i, t, k: steps.append(i) or {}
    )
    assert steps == [0, 1, 2, 3]
    assert tiny_pipe.scheduler.config.shift == 3.0


# ---------------------------------------------------------------------------------------------------------------------
# Captioning inputs
# ---------------------------------------------------------------------------------------------------------------------
def test_caption_accepts_every_documented_video_layout(tmp_path, tiny_pipe):
    frames = tiny_pipe.generate_video(PROMPTS[0], generator=seeded(2)).frames[0]  # (F, H, W, 3) in [0, 1]
    reference = tiny_pipe.caption(frames, generator=seeded()).text
    as_uint8 = (frames * 255).round().astype(np.uint8)
    as_pil = [PIL.Image.fromarray(frame) for frame in as_uint8]
    as_torch = torch.from_numpy(frames).permute(0, 3, 1, 2)
    for video in (as_uint8, as_pil, as_torch, as_torch[None], frames[None]):
        assert len(tiny_pipe.caption(video, generator=seeded()).text) == 1
    assert tiny_pipe.caption(as_torch, generator=seeded()).text == reference
    path = export_to_video(list(frames), str(tmp_path / "clip.mp4"), fps=8)
    from_file = tiny_pipe.caption(path, generator=seeded())
    assert len(from_file.text) == 1 and isinstance(from_file.text[0], str)
    # A larger, non-square video is resized and center-cropped to the model's size.
    big = np.random.default_rng(0).random((9, 40, 24, 3), dtype=np.float32)
    assert tiny_pipe.preprocess_video(big).shape == (1, 3, 5, 16, 16)
    assert tiny_pipe.preprocess_video(big, num_frames=9).shape == (1, 3, 9, 16, 16)
    batch = tiny_pipe.caption([as_pil, path], generator=[seeded(), seeded()])
    assert len(batch.text) == 2


def test_caption_with_prompt_condition_and_length(tiny_pipe):
    video = out_video(tiny_pipe)
    conditions = []
    hook = tiny_pipe.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: conditions.append(kwargs["encoder_hidden_states"]), with_kwargs=True
    )
    try:
        tiny_pipe.caption(video, prompt="a red circle", generator=seeded())
        tiny_pipe.caption(video, generator=seeded())
    finally:
        hook.remove()
    assert conditions[0].shape == (1, 512, 32) and torch.count_nonzero(conditions[0]) > 0
    assert conditions[-1] is None  # the official all-zero condition
    short = tiny_pipe.caption(video, generator=seeded(), max_text_length=3).text[0]
    assert len(short.split()) <= 3


def test_caption_decoding_stops_at_eos_and_strips_specials(tiny_pipe):
    tokenizer = tiny_pipe.tokenizer
    ids = torch.tensor(
        [
            [tokenizer.convert_tokens_to_ids("red"), tokenizer.convert_tokens_to_ids("circle"), 1, 5, 6],
            [0, tokenizer.convert_tokens_to_ids("square"), 0, 1, 0],
        ]
    )
    assert tiny_pipe._decode_text(ids) == ["red circle", "square"]


# ---------------------------------------------------------------------------------------------------------------------
# Video context cache
# ---------------------------------------------------------------------------------------------------------------------
def _record_caption_steps(pipe, **kwargs):
    """Captions two videos; returns the texts and, per transformer call, (whether the video ran, the text logits)."""
    videos = np.random.default_rng(0).random((2, 5, 16, 16, 3), dtype=np.float32)
    steps = []
    hook = pipe.transformer.register_forward_hook(
        lambda module, args, kwargs, output: steps.append(
            (kwargs.get("video_latents") is not None, output.text_logits)
        ),
        with_kwargs=True,
    )
    try:
        text = pipe.caption(videos, generator=[seeded(0), seeded(1)], num_inference_steps=5, **kwargs).text
    finally:
        hook.remove()
    return text, steps


def test_exact_video_cache_is_the_default_and_changes_nothing():
    pipe, _ = build_tiny_pipelines(video_attends_text=False)
    uncached_text, uncached = _record_caption_steps(pipe, video_cache="off")
    for kwargs in ({}, {"video_cache": "exact"}):
        text, cached = _record_caption_steps(pipe, **kwargs)
        assert [full for full, _ in cached] == [True, False, False, False, False]  # the video runs once
        assert text == uncached_text
        for (_, logits), (_, reference) in zip(cached, uncached):
            torch.testing.assert_close(
                logits, reference, atol=1e-6, rtol=2e-6
            )  # float32 rounding (see test_modeling_univigu.CACHE_TOLERANCE)
    assert [full for full, _ in uncached] == [True] * 5


def test_approx_video_cache_on_a_joint_attention_model(tiny_pipe):
    assert tiny_pipe.transformer.config.video_attends_text  # the official joint attention: no cache by default
    off_text, off = _record_caption_steps(tiny_pipe)
    assert [full for full, _ in off] == [True] * 5
    _, first_only = _record_caption_steps(tiny_pipe, video_cache="approx")
    _, every_two = _record_caption_steps(tiny_pipe, video_cache="approx", video_cache_refresh=2)
    every_step_text, every_step = _record_caption_steps(tiny_pipe, video_cache="approx", video_cache_refresh=1)
    assert [full for full, _ in first_only] == [True, False, False, False, False]
    assert [full for full, _ in every_two] == [True, False, True, False, True]
    assert every_step_text == off_text  # refreshing at every step is the uncached loop
    torch.testing.assert_close(first_only[0][1], off[0][1], atol=0, rtol=0)  # the first step is a full step
    assert (first_only[1][1] - off[1][1]).abs().max() > 1e-4  # later steps use stale video keys/values


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(video_cache="exact"), "video_cache='exact' needs a transformer with video_attends_text=False"),
        (dict(video_cache="fast"), "video_cache must be one of \\('off', 'exact', 'approx'\\) or None"),
        (dict(video_cache="off", video_cache_refresh=2), "video_cache_refresh is only used with video_cache='approx'"),
        (dict(video_cache="approx", video_cache_refresh=0), "video_cache_refresh must be a positive integer"),
    ],
)
def test_bad_video_cache_arguments(tiny_pipe, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_pipe.caption(np.zeros((5, 16, 16, 3), np.float32), **kwargs)


# ---------------------------------------------------------------------------------------------------------------------
# Saving and loading
# ---------------------------------------------------------------------------------------------------------------------
def test_save_and_load_reproduce_every_mode(tmp_path, tiny_pipe):
    tiny_pipe.save_pretrained(tmp_path)
    files = set(os.listdir(tmp_path))
    assert {"model_index.json", "config.json", "model.safetensors.index.json", "transformer", "vae"} <= files
    assert not any(
        name.endswith((".bin", ".pt", ".pth", ".pkl")) for _, _, names in os.walk(tmp_path) for name in names
    )
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == {"transformer/model.safetensors"}
    model_index = json.loads((tmp_path / "model_index.json").read_text())
    assert model_index["transformer"] == ["univigu_hf", "UniViGUModel"]
    assert model_index["scheduler"] == ["univigu_hf", "UniFlowScheduler"]

    loaded = UniViGUPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    video = out_video(tiny_pipe)
    for task, kwargs in (("t2v", {"prompt": PROMPTS}), ("joint", {"prompt": PROMPTS[0]}), ("v2t", {"video": video})):
        a = task_method(tiny_pipe, task)(generator=seeded(), **kwargs)
        b = task_method(loaded, task)(generator=seeded(), **kwargs)
        if a.frames is not None:
            np.testing.assert_array_equal(a.frames, b.frames)
        assert a.text == b.text

    transformer = AutoModel.from_pretrained(tmp_path)  # the same folder serves transformers
    assert isinstance(transformer, UniViGUModel)
    for key, value in tiny_pipe.transformer.state_dict().items():
        assert torch.equal(transformer.state_dict()[key], value), key


def test_load_by_repo_id_from_an_offline_hub_cache(tmp_path, tiny_pipe):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--univigu--tiny"
    snapshot = repo / "snapshots" / commit
    tiny_pipe.save_pretrained(tmp_path / "saved")
    shutil.copytree(tmp_path / "saved", snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    loaded = UniViGUPipeline.from_pretrained("univigu/tiny", cache_dir=tmp_path / "hub")
    loaded.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(
        loaded.generate_video(PROMPTS[0], generator=seeded()).frames,
        tiny_pipe.generate_video(PROMPTS[0], generator=seeded()).frames,
    )
    assert isinstance(AutoModel.from_pretrained("univigu/tiny", cache_dir=tmp_path / "hub"), UniViGUModel)


def test_bfloat16_pipeline_runs_every_mode(tmp_path, tiny_pipe):
    tiny_pipe.save_pretrained(tmp_path)
    pipe = UniViGUPipeline.from_pretrained(tmp_path, dtype=torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.transformer.dtype == torch.bfloat16
    assert pipe.transformer.scale_shift_table.dtype == torch.float32
    joint = pipe.generate_joint(PROMPTS[0], generator=seeded())
    assert np.isfinite(joint.frames).all() and isinstance(joint.text[0], str)
    assert len(pipe.caption(joint.frames, generator=seeded()).text) == 1


# ---------------------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------------------
BAD_CALLS = [
    ("num_frames not 4k+1", "t2v", dict(prompt="a", num_frames=6), ValueError, "num_frames must be 4k\\+1"),
    (
        "height not multiple",
        "t2v",
        dict(prompt="a", height=24),
        ValueError,
        "height must be a positive multiple of 16",
    ),
    ("width not multiple", "joint", dict(prompt="a", width=8), ValueError, "width must be a positive multiple of 16"),
    (
        "negative batch",
        "t2v",
        dict(prompt=PROMPTS, negative_prompt=["x", "y", "z"]),
        ValueError,
        "negative_prompt has 3 entries but prompt has 2",
    ),
    ("empty prompt list", "t2v", dict(prompt=[]), ValueError, "prompt must be a non-empty"),
    ("prompt type", "joint", dict(prompt=3), TypeError, "prompt must be a string or a list of strings"),
    (
        "steps zero",
        "t2v",
        dict(prompt="a", num_inference_steps=0),
        ValueError,
        "num_inference_steps must be a positive",
    ),
    ("output type", "t2v", dict(prompt="a", output_type="gif"), ValueError, "output_type must be one of"),
    (
        "text length zero",
        "joint",
        dict(prompt="a", max_text_length=0),
        ValueError,
        "max_text_length must be an integer in \\[1,",
    ),
    ("text length too long", "joint", dict(prompt="a", max_text_length=10**7), ValueError, "max_text_length must be"),
    (
        "videos per prompt",
        "t2v",
        dict(prompt="a", num_videos_per_prompt=0),
        ValueError,
        "num_videos_per_prompt must be",
    ),
    ("generator list", "t2v", dict(prompt=PROMPTS, generator=[torch.Generator()]), ValueError, "generators"),
    (
        "generator list joint",
        "joint",
        dict(prompt="a", generator=[torch.Generator()] * 2),
        ValueError,
        "list of generators of length 2",
    ),
    (
        "generator list caption",
        "v2t",
        dict(video=np.zeros((5, 16, 16, 3), np.float32), generator=[torch.Generator()] * 2),
        ValueError,
        "generator list has 2 generators but the batch has 1",
    ),
    (
        "latents shape",
        "t2v",
        dict(prompt="a", latents=torch.zeros(1, 16, 3, 2, 2)),
        ValueError,
        "latents must have shape",
    ),
    (
        "callback inputs",
        "t2v",
        dict(prompt="a", callback_on_step_end_tensor_inputs=["noise"]),
        ValueError,
        "callback_on_step_end_tensor_inputs must be in",
    ),
    (
        "video rank",
        "v2t",
        dict(video=np.zeros((16, 16, 3), np.float32)),
        ValueError,
        "video as a numpy array must have shape",
    ),
    (
        "video channels",
        "v2t",
        dict(video=torch.zeros(5, 4, 16, 16)),
        ValueError,
        "video as a torch tensor must have shape",
    ),
    (
        "video range",
        "v2t",
        dict(video=torch.full((5, 3, 16, 16), -1.0)),
        ValueError,
        "video values must be in \\[0, 1\\]",
    ),
    (
        "video dtype",
        "v2t",
        dict(video=np.zeros((5, 16, 16, 3), np.int32)),
        TypeError,
        "uint8 in \\[0, 255\\], uint16 in \\[0, 65535\\] or float in \\[0, 1\\], got int32",
    ),
    ("video type", "v2t", dict(video=3.0), TypeError, "video must be a path"),
    ("video missing file", "v2t", dict(video="/nonexistent/clip.mp4"), FileNotFoundError, "video file not found"),
    (
        "too few frames",
        "v2t",
        dict(video=np.zeros((5, 16, 16, 3), np.float32), num_frames=9),
        ValueError,
        "video has 5 frames but num_frames=9",
    ),
    (
        "caption prompt batch",
        "v2t",
        dict(video=[np.zeros((5, 16, 16, 3), np.float32)] * 2, prompt=["a"] * 3),
        ValueError,
        "prompt has 3 entries but 2 videos",
    ),
]


@pytest.mark.parametrize("name,task,kwargs,error,message", BAD_CALLS, ids=[case[0] for case in BAD_CALLS])
def test_bad_input_is_a_clear_error(tiny_pipe, name, task, kwargs, error, message):
    with pytest.raises(error, match=message):
        task_method(tiny_pipe, task)(**kwargs)


def test_the_call_is_text_to_video_and_unreadable_video_is_an_error(tmp_path, tiny_pipe):
    # `pipe(...)` is text-to-video, as `WanPipeline`'s call: the same method as `generate_video`.
    assert UniViGUPipeline.__call__ is UniViGUPipeline.generate_video
    assert "prompt_embeds" in inspect.signature(UniViGUPipeline.__call__).parameters
    with pytest.raises(TypeError, match="unexpected keyword argument 'task'"):
        tiny_pipe(task="v2t", prompt="a")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(ValueError, match="could not be read as a video"):
        tiny_pipe.caption(str(broken))


def test_a_transient_video_read_failure_is_retried(tmp_path, tiny_pipe, monkeypatch):
    """imageio-ffmpeg times out on ffmpeg's header under load; the read is tried again before giving up."""
    import univigu_hf.pipelines.video_io as module

    video = tmp_path / "clip.mp4"
    video.write_bytes(b"stands in for a valid file")
    failures = []

    def flaky(result):
        def action(*args):
            if len(failures) < 2:
                failures.append(args)
                raise OSError("Could not load meta information")
            return result

        return action

    monkeypatch.setattr(module, "_ffmpeg_frame_count", flaky(5))
    monkeypatch.setattr(
        module, "_read_ffmpeg_frames", lambda path, index, transform: torch.rand(len(index), 3, 16, 16)
    )
    pixels = tiny_pipe.preprocess_video(str(video), height=16, width=16, num_frames=5)
    assert len(failures) == 2 and pixels.shape[-3:] == (5, 16, 16)
    failures.clear()
    monkeypatch.setattr(module, "_read_ffmpeg_frames", flaky(torch.rand(5, 3, 16, 16)))
    assert tiny_pipe.preprocess_video(str(video), height=16, width=16, num_frames=5).shape[-3:] == (5, 16, 16)
    assert len(failures) == 2
    monkeypatch.setattr(module, "_ffmpeg_frame_count", lambda path: (_ for _ in ()).throw(OSError("Could not load")))
    with pytest.raises(ValueError, match="could not be read as a video after 3 attempts"):
        tiny_pipe.preprocess_video(str(video), height=16, width=16, num_frames=5)


def test_constructor_checks_component_types(tiny_pipelines):
    unified, wan = tiny_pipelines
    with pytest.raises(TypeError, match="transformer must be a UniViGUModel"):
        UniViGUPipeline(unified.vae, unified.text_encoder, unified.tokenizer, wan.transformer, unified.scheduler)
    with pytest.raises(TypeError, match="scheduler must be a UniFlowScheduler"):
        UniViGUPipeline(unified.vae, unified.text_encoder, unified.tokenizer, unified.transformer, wan.scheduler)
    assert isinstance(wan, WanPipeline)


def test_model_cpu_offload_hooks_keep_outputs():
    reference_pipe, _ = build_tiny_pipelines()
    offloaded, _ = build_tiny_pipelines()
    offloaded.enable_model_cpu_offload(device="cpu")  # accelerate hooks; on a GPU: enable_model_cpu_offload()
    a = reference_pipe.generate_joint(PROMPTS[0], generator=seeded())
    b = offloaded.generate_joint(PROMPTS[0], generator=seeded())
    np.testing.assert_array_equal(a.frames, b.frames)
    assert a.text == b.text
