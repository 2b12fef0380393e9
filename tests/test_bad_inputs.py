"""The bad-input matrix: every public entry point, misused, raises the documented exception type with a message that
names the argument and what it accepts (and, where there is one, the value it got).

One row per misuse: `(name, call, exception type, fragments)`. `call(ctx)` triggers the error with the shared tiny
components of `ctx`; every fragment must appear in the message. The CLI rows raise `CLIExit`, which carries the exit
status and what the command printed on stderr.
"""

import contextlib
import copy
import io
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from transformers import TrainingArguments, pipeline

from univigu_hf import (
    TextToVideoPipeline,
    TextToVideoTextPipeline,
    UniFlowScheduler,
    UniViGUConfig,
    UniViGUModel,
    UniViGUPipeline,
    VideoToTextPipeline,
    convert_official_checkpoint,
    shapes,
)
from univigu_hf.cli import main as cli_main
from univigu_hf.convert import to_official_state_dict
from univigu_hf.shapes import scoring as shapes_scoring
from univigu_hf.testing import build_tiny_pipelines, build_tiny_wan
from univigu_hf.training import UniFlowTrainingConfig, UniViGUDataCollator, UniViGUTrainer, set_trainable
from univigu_hf.training.script import run


class CLIExit(Exception):
    """A CLI call that exited with a non-zero status; `str()` is what it printed on stderr."""

    def __init__(self, code, stderr):
        super().__init__(stderr)
        self.code = code


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs")
    pipe = build_tiny_pipelines()[0]
    pipe.save_pretrained(root / "pipe")
    model = pipe.transformer
    video = np.random.default_rng(0).random((5, 16, 16, 3), dtype=np.float32)
    official = root / "official.pth"
    torch.save({"model": to_official_state_dict(model)}, official)
    truncated = root / "truncated.safetensors"
    truncated.write_bytes((root / "pipe" / "transformer" / "model.safetensors").read_bytes()[:1000])
    (root / "truncated_model").mkdir()
    (root / "truncated_model" / "config.json").write_text((root / "pipe" / "transformer" / "config.json").read_text())
    (root / "truncated_model" / "model.safetensors").write_bytes(truncated.read_bytes())
    (root / "unknown_key.yaml").write_text("learning_rte: 0.1\n")

    def cli(*argv):
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = cli_main([str(a) for a in argv])
            except SystemExit as exit_:  # argparse
                code = exit_.code
        if code:
            raise CLIExit(code, stderr.getvalue())
        return code

    def train(*argv, stage="recall"):
        return run(stage, ["--output_dir", str(root / "train"), *argv])

    def poisoned(component, parameter, value=float("nan")):
        """A context whose pipeline has one parameter set to NaN/inf (a diverged or overflowing model)."""
        clone = copy.deepcopy(pipe)
        with torch.no_grad():
            getattr(clone, component).get_parameter(parameter).fill_(value)
        return SimpleNamespace(pipe=clone, video=video)

    return SimpleNamespace(
        root=root,
        pipe=pipe,
        model=model,
        vocab=model.config.text_vocab_size,
        scheduler=UniFlowScheduler(text_vocab_size=8),
        video=video,
        official=official,
        truncated=truncated,
        v2t=VideoToTextPipeline(model=model, univigu_pipeline=pipe),
        t2v=TextToVideoPipeline(model=model, univigu_pipeline=pipe),
        joint=TextToVideoTextPipeline(model=model, univigu_pipeline=pipe),
        cli=cli,
        train=train,
        poisoned=poisoned,
    )


def latents(*shape, dtype=torch.float32):
    return torch.zeros(*shape, dtype=dtype)


def forward(ctx, **overrides):
    """The model on valid inputs (batch 1, 1 latent frame of 2x2, 4 caption tokens), with `overrides`."""
    inputs = dict(
        video_latents=latents(1, 16, 1, 2, 2),
        video_timestep=torch.tensor([500.0]),
        text_ids=torch.zeros(1, 4, dtype=torch.long),
        text_timestep=torch.tensor([500.0]),
    )
    inputs.update(overrides)
    return ctx.model(**{k: v for k, v in inputs.items() if v is not None})


def step_text(ctx, logits=None, text_time=0.5, ids=None, **kwargs):
    logits = torch.zeros(2, 5, 8) if logits is None else logits
    ids = torch.zeros(2, 5, dtype=torch.long) if ids is None else ids
    return ctx.scheduler.step_text(logits, text_time, ids, next_text_time=kwargs.pop("next_text_time", 0.75), **kwargs)


def t2v(ctx, **kwargs):
    return ctx.pipe.generate_video(**{"prompt": "a red circle", "num_inference_steps": 1, **kwargs})


def caption(ctx, **kwargs):
    return ctx.pipe.caption(**{"video": ctx.video, "num_inference_steps": 1, **kwargs})


def joint(ctx, **kwargs):
    return ctx.pipe.generate_joint(**{"prompt": "a red circle", "num_inference_steps": 1, **kwargs})


def cli_generate(ctx, *argv):
    output = ctx.root / "out.mp4"
    return ctx.cli("generate", "--prompt", "a", "--output", output, "--model", ctx.root / "pipe", "--quiet", *argv)


NAN = float("nan")
CALLBACK_INPUTS = "['latents', 'prompt_embeds', 'negative_prompt_embeds', 'text_ids']"

CASES = [
    # ----- UniViGUModel.forward --------------------------------------------------------------------------------------
    ("model: no input", lambda c: c.model(), ValueError, ["video_latents, text_ids or both", "got neither"]),
    ("model: integer latents", lambda c: forward(c, video_latents=latents(1, 16, 1, 2, 2, dtype=torch.long)), TypeError, ["video_latents must be a floating-point torch.Tensor", "torch.int64"]),
    ("model: latents rank", lambda c: forward(c, video_latents=latents(16, 1, 2, 2)), ValueError, ["video_latents must have shape (batch, channels, frames, height, width)", "rank 4"]),
    ("model: latent channels", lambda c: forward(c, video_latents=latents(1, 4, 1, 2, 2)), ValueError, ["video_latents must have in_channels=16 channels", "(1, 4, 1, 2, 2)"]),
    ("model: latent height", lambda c: forward(c, video_latents=latents(1, 16, 1, 3, 2)), ValueError, ["video_latents height (3)", "multiple of the patch size 2"]),
    ("model: missing video timestep", lambda c: forward(c, video_timestep=None), ValueError, ["video_timestep is required with video_latents", "shape (batch,)", "0..1000"]),
    ("model: timestep shape", lambda c: forward(c, video_timestep=torch.zeros(3)), ValueError, ["video_timestep must have shape (1,)", "or be a scalar", "got (3,)"]),
    ("model: infinite timestep", lambda c: forward(c, text_timestep=float("inf")), ValueError, ["text_timestep must be a finite number", "0..1000", "inf"]),
    ("model: float text ids", lambda c: forward(c, text_ids=torch.zeros(1, 4)), TypeError, ["text_ids must be an integer torch.Tensor", "torch.float32"]),
    ("model: text id out of range", lambda c: forward(c, text_ids=torch.full((1, 4), c.vocab)), ValueError, ["text_ids must be token ids in [0, text_vocab_size=31)", "found 31"]),
    ("model: batch sizes", lambda c: forward(c, video_latents=latents(2, 16, 1, 2, 2), video_timestep=torch.zeros(2)), ValueError, ["video_latents and text_ids must have the same batch size", "'video_latents': 2", "'text_ids': 1"]),
    ("model: prompt width", lambda c: forward(c, encoder_hidden_states=torch.zeros(1, 3, 7)), ValueError, ["encoder_hidden_states must have shape (batch=1, sequence, text_dim=32)", "(1, 3, 7)"]),
    ("model: mask shape", lambda c: forward(c, text_attention_mask=torch.ones(1, 3)), ValueError, ["text_attention_mask must have the shape of text_ids (1, 4)", "(1, 3)"]),
    ("model: NaN latents", lambda c: forward(c, video_latents=torch.full((1, 16, 1, 2, 2), NAN)), ValueError, ["video_latents contains 64 NaN or inf values", "accepted: finite values"]),
    ("model: NaN prompt embeddings", lambda c: forward(c, encoder_hidden_states=torch.full((1, 3, 32), NAN)), ValueError, ["encoder_hidden_states contains 96 NaN or inf values", "accepted: finite values"]),
    # ----- UniViGUConfig ---------------------------------------------------------------------------------------------
    ("config: qk_norm", lambda c: UniViGUConfig(qk_norm="rms_norm"), ValueError, ["qk_norm must be one of ('rms_norm_across_heads',)", "'rms_norm'"]),
    ("config: odd head dim", lambda c: UniViGUConfig(attention_head_dim=13), ValueError, ["attention_head_dim must be even", "13"]),
    ("config: field type", lambda c: UniViGUConfig(num_layers="2"), TypeError, ["num_layers must be an int", "'2'"]),
    # ----- UniFlowScheduler ------------------------------------------------------------------------------------------
    ("scheduler: text source", lambda c: UniFlowScheduler(text_source="noise"), ValueError, ["text_source must be one of ('uniform', 'mask')", "'noise'"]),
    ("scheduler: mask without id", lambda c: UniFlowScheduler(text_source="mask"), ValueError, ["mask_token_id must be set when text_source is 'mask'", "None"]),
    ("scheduler: shift", lambda c: UniFlowScheduler(shift=0), ValueError, ["shift must be a positive finite float", "got 0"]),
    ("scheduler: steps", lambda c: c.scheduler.set_timesteps(0), ValueError, ["num_inference_steps must be a positive int", "got 0"]),
    ("scheduler: text time schedule", lambda c: c.scheduler.set_timesteps(4, text_time_schedule="cosine"), ValueError, ["text_time_schedule must be one of ('uniform', 'video')", "'cosine'"]),
    ("scheduler: text time range", lambda c: step_text(c, text_time=1.5, next_text_time=1.0), ValueError, ["text_time must lie in [0, 1]", "1.5"]),
    ("scheduler: logits rank", lambda c: step_text(c, logits=torch.zeros(2, 5)), ValueError, ["text_logits must have shape (batch_size, sequence_length, vocab_size)", "(2, 5)"]),
    ("scheduler: ids range", lambda c: step_text(c, ids=torch.full((2, 5), 8)), ValueError, ["text_ids must lie in [0, vocab_size=8)", "[8, 8]"]),
    ("scheduler: backwards step", lambda c: step_text(c, next_text_time=0.25), ValueError, ["next_text_time must be >= text_time", "0.25"]),
    ("scheduler: NaN logits", lambda c: step_text(c, logits=torch.full((2, 5, 8), NAN)), ValueError, ["text_logits must be finite (or -inf", "80 NaN/+inf values"]),
    ("scheduler: integer timestep", lambda c: c.scheduler.step(torch.zeros(1), 3, torch.zeros(1)), ValueError, ["timestep must be one of `scheduler.timesteps`", "integer index"]),
    ("scheduler: noise shape", lambda c: c.scheduler.add_noise(torch.zeros(2, 4), torch.zeros(2, 5), 0.5), ValueError, ["noise must have the shape of original_samples (2, 4)", "(2, 5)"]),
    ("scheduler: sigma sampler", lambda c: c.scheduler.sample_video_sigmas(2, mode="beta"), ValueError, ["mode must be one of ('uniform', 'shifted_uniform', 'logit_normal')", "'beta'"]),
    # ----- UniViGUPipeline -------------------------------------------------------------------------------------------
    ("pipeline: num_frames", lambda c: t2v(c, num_frames=6), ValueError, ["num_frames must be 4k+1 (1, 5, 9, ...)", "got 6"]),
    ("pipeline: height", lambda c: t2v(c, height=24), ValueError, ["height must be a positive multiple of 16", "got 24"]),
    ("pipeline: steps", lambda c: joint(c, num_inference_steps=0), ValueError, ["num_inference_steps must be a positive integer", "got 0"]),
    ("pipeline: output type", lambda c: t2v(c, output_type="mp4"), ValueError, ["output_type must be one of ('np', 'pil', 'pt', 'latent')", "'mp4'"]),
    ("pipeline: prompt type", lambda c: t2v(c, prompt=5), TypeError, ["prompt must be a string or a list of strings", "int 5"]),
    ("pipeline: empty prompt list", lambda c: joint(c, prompt=[]), ValueError, ["prompt must be a non-empty string or list of strings", "empty list"]),
    ("pipeline: negative prompts", lambda c: t2v(c, prompt=["a", "b"], negative_prompt=["x", "y", "z"]), ValueError, ["negative_prompt has 3 entries but prompt has 2", "or give a single negative prompt"]),
    ("pipeline: guidance type", lambda c: t2v(c, guidance_scale="5"), TypeError, ["guidance_scale must be a number", "'5'"]),
    ("pipeline: guidance NaN", lambda c: t2v(c, guidance_scale=NAN), ValueError, ["guidance_scale must be a finite number", "nan"]),
    ("pipeline: latents shape", lambda c: t2v(c, latents=torch.zeros(1, 16, 3, 2, 2)), ValueError, ["latents must have shape (1, 16, 2, 2, 2)", "got (1, 16, 3, 2, 2)"]),
    ("pipeline: NaN latents", lambda c: t2v(c, latents=torch.full((1, 16, 2, 2, 2), NAN)), ValueError, ["latents must be a finite floating-point tensor", "NaN or inf"]),
    ("pipeline: generator count", lambda c: t2v(c, prompt=["a", "b"], use_text_stream=False, generator=[seeded()] * 3), ValueError, ["generator", "3"]),
    ("pipeline: caption generator count", lambda c: caption(c, generator=[seeded()] * 2), ValueError, ["generator list has 2 generators but the batch has 1", "a list of 1 (one per sample)"]),
    ("pipeline: generator type", lambda c: caption(c, generator="seed"), TypeError, ["generator must be a torch.Generator or a list of them", "str"]),
    ("pipeline: callback type", lambda c: t2v(c, callback_on_step_end="print"), TypeError, ["callback_on_step_end must be None, a callable", "PipelineCallback", "str"]),
    ("pipeline: callback tensors", lambda c: t2v(c, callback_on_step_end_tensor_inputs=["noise"]), ValueError, [f"callback_on_step_end_tensor_inputs must be in {CALLBACK_INPUTS}", "['noise']"]),
    ("pipeline: videos per prompt", lambda c: t2v(c, num_videos_per_prompt=0), ValueError, ["num_videos_per_prompt must be a positive integer", "got 0"]),
    ("pipeline: T5 length", lambda c: joint(c, max_sequence_length=0), ValueError, ["max_sequence_length must be a positive integer", "got 0"]),
    ("pipeline: caption length", lambda c: joint(c, max_text_length=0), ValueError, ["max_text_length must be an integer in [1, 12] (the transformer's max_text_length", "got 0"]),
    ("pipeline: NaN video", lambda c: caption(c, video=np.full((5, 16, 16, 3), NAN, np.float32)), ValueError, ["video contains 3840 NaN or inf values", "accepted: finite floats in [0, 1]"]),
    ("pipeline: video range", lambda c: caption(c, video=torch.full((5, 3, 16, 16), -1.0)), ValueError, ["video values must be in [0, 1] (floats) or [0, 255] (uint8)", "[-1.000, -1.000]"]),
    ("pipeline: video dtype", lambda c: caption(c, video=np.zeros((5, 16, 16, 3), np.int32)), TypeError, ["video as a numpy array must be uint8 in [0, 255], uint16 in [0, 65535] or float in [0, 1]", "int32"]),
    ("pipeline: video layout", lambda c: caption(c, video=torch.zeros(5, 16, 16, 3)), ValueError, ["video as a torch tensor must have shape (frames, 3, height, width)", "(5, 16, 16, 3)"]),
    ("pipeline: video file", lambda c: caption(c, video="/nonexistent/clip.mp4"), FileNotFoundError, ["video file not found", "/nonexistent/clip.mp4"]),
    ("pipeline: too few frames", lambda c: caption(c, video=c.video[:3], num_frames=5), ValueError, ["video has 3 frames but num_frames=5", "accepted: num_frames <= 3 of the form 4k+1"]),
    ("pipeline: caption prompts", lambda c: caption(c, prompt=["a", "b"]), ValueError, ["prompt has 2 entries but 1 videos", "one prompt per video or a single prompt"]),
    ("pipeline: empty video list", lambda c: c.pipe.preprocess_video([]), ValueError, ["video must not be an empty list", "accepted: a path"]),
    ("pipeline: no task argument", lambda c: c.pipe(task="v2t", prompt="a"), TypeError, ["unexpected keyword argument 'task'"]),
    ("pipeline: prompt and prompt_embeds", lambda c: t2v(c, prompt_embeds=torch.zeros(1, 3, 32), use_text_stream=False), ValueError, ["prompt and prompt_embeds cannot both be given without the text stream"]),
    ("pipeline: prompt_embeds rows", lambda c: t2v(c, prompt_embeds=torch.zeros(2, 3, 32)), ValueError, ["prompt_embeds must have one row per prompt (1)", "got 2"]),
    ("pipeline: prompt_embeds without prompt in the text stream", lambda c: t2v(c, prompt=None, prompt_embeds=torch.zeros(1, 3, 32)), ValueError, ["prompt is required with use_text_stream=True", "use_text_stream=False"]),
    ("pipeline: prompt_embeds width", lambda c: t2v(c, prompt=None, use_text_stream=False, prompt_embeds=torch.zeros(1, 3, 7)), ValueError, ["prompt_embeds must have text_dim=32 features", "(1, 3, 7)"]),
    ("pipeline: from_wan type", lambda c: UniViGUPipeline.from_wan(3), TypeError, ["wan_pipeline_or_path must be a diffusers WanPipeline or the path/repo id", "int"]),
    ("pipeline: scheduler type", lambda c: UniViGUPipeline(c.pipe.vae, c.pipe.text_encoder, c.pipe.tokenizer, c.model, FlowMatchEulerDiscreteScheduler()), TypeError, ["scheduler must be a UniFlowScheduler", "FlowMatchEulerDiscreteScheduler"]),
    ("pipeline: tokenizer vs vocabulary", lambda c: UniViGUPipeline(c.pipe.vae, c.pipe.text_encoder, c.pipe.tokenizer, UniViGUModel.from_wan(build_tiny_wan(), text_vocab_size=10), c.pipe.scheduler), ValueError, ["tokenizer does not match the transformer", "31 tokens but text_vocab_size=10", "at most text_vocab_size"]),
    ("pipeline: save into a file", lambda c: c.pipe.save_pretrained(c.truncated), NotADirectoryError, ["save_directory must be a folder", "truncated.safetensors"]),
    # ----- Numerical safety: NaN/inf produced mid-run ----------------------------------------------------------------
    ("numerics: transformer NaN", lambda c: t2v(c.poisoned("transformer", "proj_out.bias")), ValueError, ["latents contains NaN or inf values", "at denoising step 0", "weights themselves hold NaN or inf", "'proj_out.bias'"]),
    ("numerics: text head NaN", lambda c: caption(c.poisoned("transformer", "text_proj_out.bias")), ValueError, ["text_logits contains NaN or inf values", "at denoising step 0"]),
    ("numerics: text encoder overflow", lambda c: joint(c.poisoned("text_encoder", "shared.weight", float("inf"))), ValueError, ["prompt_embeds contains NaN or inf values", "load the text_encoder in bfloat16 or float32"]),
    ("numerics: VAE decode", lambda c: t2v(c.poisoned("vae", "decoder.conv_out.bias")), ValueError, ["The decoded video contains NaN or inf values", "use bfloat16 or float32 for the vae"]),
    # ----- transformers pipeline() one-liners ------------------------------------------------------------------------
    ("one-liner: video type", lambda c: c.v2t(42), TypeError, ["inputs must be a video (a file path, a list of PIL images", "int"]),
    ("one-liner: empty batch", lambda c: c.v2t([]), ValueError, ["inputs (the videos) must not be an empty list"]),
    ("one-liner: unknown argument", lambda c: c.v2t(c.video, max_new_tokens=3), TypeError, ["unexpected keyword argument 'max_new_tokens'", "it accepts", "'max_text_length'"]),
    ("one-liner: batch size", lambda c: c.v2t(c.video, batch_size=0), ValueError, ["batch_size must be a positive integer", "got 0"]),
    ("one-liner: generators", lambda c: c.v2t([c.video, c.video], generator=[seeded()]), ValueError, ["generator has 1 entries but this call has 2 (one per output)"]),
    ("one-liner: prompt type", lambda c: c.t2v(42), TypeError, ["inputs (the prompt) must be a string or a list of strings", "int 42"]),
    ("one-liner: fps", lambda c: c.t2v("a", fps=0, num_inference_steps=1), ValueError, ["fps must be a finite positive number", "got 0"]),
    ("one-liner: joint argument", lambda c: c.joint("a", use_text_stream=False), TypeError, ["unexpected keyword argument 'use_text_stream'", "it accepts"]),
    ("one-liner: tokenizer by name", lambda c: pipeline("video-to-text", model=str(c.root / "pipe"), tokenizer="t5-small", device="cpu"), TypeError, ["tokenizer must be a loaded tokenizer object", "'t5-small'"]),
    # ----- The univigu CLI -------------------------------------------------------------------------------------------
    ("cli: output extension", lambda c: cli_generate(c, "--output", c.root / "out.avi"), CLIExit, ["univigu generate: error: --output must end in .mp4 or .gif", "out.avi"]),
    ("cli: steps", lambda c: cli_generate(c, "--steps", 0), CLIExit, ["argument --steps: must be an integer in [1, 1000], got 0"]),
    ("cli: num_frames", lambda c: cli_generate(c, "--num-frames", 6), CLIExit, ["univigu generate: error: num_frames must be 4k+1", "got 6"]),
    ("cli: missing video", lambda c: c.cli("caption", c.root / "missing.mp4"), CLIExit, ["univigu caption: error: video file not found", "missing.mp4"]),
    ("cli: model folder", lambda c: cli_generate(c, "--model", c.root / "nope"), CLIExit, ["model folder not found", "pass a saved UniViGUPipeline folder or a Hub repo id"]),
    ("cli: device", lambda c: cli_generate(c, "--device", "gpu!"), CLIExit, ["--device: not a torch device: 'gpu!'", "accepted: cpu, cuda"]),
    ("cli: dtype", lambda c: cli_generate(c, "--dtype", "float64"), CLIExit, ["argument --dtype: invalid choice: 'float64'", "'bfloat16', 'float16', 'float32'"]),
    ("cli: demo steps", lambda c: c.cli("demo", "--steps", 0), CLIExit, ["argument --steps: must be an integer in [1, 1000], got 0"]),
    ("cli: convert checkpoint", lambda c: c.cli("convert", "--checkpoint", c.root / "none.pth", "--wan-config", c.root / "pipe", "--output", c.root / "conv"), CLIExit, ["univigu convert: error: checkpoint file not found", "none.pth"]),
    ("cli: convert vocabulary", lambda c: c.cli("convert", "--checkpoint", c.official, "--wan-config", c.root / "pipe", "--output", c.root / "conv", "--text-vocab-size", 0), CLIExit, ["--text-vocab-size must be a positive integer, got 0"]),
    # ----- The converter ---------------------------------------------------------------------------------------------
    ("convert: missing file", lambda c: convert_official_checkpoint(c.root / "none.pth", c.root / "pipe"), FileNotFoundError, ["checkpoint file not found", "none.pth"]),
    ("convert: truncated safetensors", lambda c: convert_official_checkpoint(c.truncated, c.root / "pipe"), ValueError, ["not a readable safetensors file", "truncated or corrupted", "truncated.safetensors"]),
    ("convert: wan_config type", lambda c: convert_official_checkpoint(c.official, 42), TypeError, ["wan_config must be a dict, a UniViGUConfig, or the path/repo id", "int"]),
    ("convert: vocabulary", lambda c: convert_official_checkpoint(c.official, c.root / "pipe", text_vocab_size=10), ValueError, ["text_vocab_size=10 does not match the checkpoint's vocab_embed (31 rows)", "accepted: 31 (uniform source) or 30"]),
    ("convert: export type", lambda c: to_official_state_dict(42), TypeError, ["model must be a UniViGUModel", "int"]),
    # ----- Training scripts and their configuration ------------------------------------------------------------------
    ("train: stage", lambda c: run("pretrain", []), ValueError, ["stage must be one of ('base', 'recall', 'refine')", "'pretrain'"]),
    ("train: trainable", lambda c: c.train("--trainable", "audio"), ValueError, ["--trainable must be one of ('all', 'text', 'video')", "'audio'"]),
    ("train: task probability", lambda c: c.train("--joint_prob", "-1"), ValueError, ["--joint_prob must be a finite number >= 0", "-1"]),
    ("train: dropout value", lambda c: c.train("--condition_dropout_value", "noise"), ValueError, ["--condition_dropout_value must be one of ('empty', 'zeros')", "'noise'"]),
    ("train: frames", lambda c: c.train("--num_frames", "0"), ValueError, ["--num_frames must be a positive integer", "got 0"]),
    ("train: init_from", lambda c: c.train("--init_from", "/nonexistent/pipe", "--dataset_name", "x"), ValueError, ["--init_from='/nonexistent/pipe' is not a diffusers pipeline folder or repo id", "model_index.json"]),
    ("train: dataset", lambda c: c.train("--init_from", str(c.root / "pipe")), ValueError, ["--dataset_name is required", "metadata.jsonl"]),
    ("train: unknown config key", lambda c: c.train("--config", str(c.root / "unknown_key.yaml")), ValueError, ["Unknown arguments from config file", "--learning_rte"]),
    ("train: objective NaN weight", lambda c: UniFlowTrainingConfig(text_loss_weight=NAN), ValueError, ["text_loss_weight must be a finite number >= 0", "nan"]),
    ("train: collator length", lambda c: UniViGUDataCollator(max_text_length=0, pad_token_id=0), ValueError, ["max_text_length must be a positive integer", "got 0"]),
    ("train: trainable function", lambda c: set_trainable(c.model, "lora"), ValueError, ["trainable must be one of ('all', 'text', 'video')", "'lora'"]),
    ("train: trainer scheduler", lambda c: UniViGUTrainer(model=c.model, args=TrainingArguments(str(c.root / "t"), use_cpu=True, report_to="none"), flow_scheduler=FlowMatchEulerDiscreteScheduler()), TypeError, ["flow_scheduler must be a UniFlowScheduler", "FlowMatchEulerDiscreteScheduler"]),
    # ----- Loading ---------------------------------------------------------------------------------------------------
    ("load: truncated weights", lambda c: UniViGUModel.from_pretrained(c.root / "truncated_model"), OSError, ["Cannot load the weights file", "truncated_model/model.safetensors", "truncated or corrupted", "force_download=True"]),
    # ----- The shapes world (read-only here) -------------------------------------------------------------------------
    ("shapes: frames", lambda c: shapes.render(shapes.sample_attributes(np.random.default_rng(0)), np.random.default_rng(0), num_frames=6), ValueError, ["num_frames must be 4k+1 and at least 9", "got 6"]),
    ("shapes: size", lambda c: shapes.render(shapes.sample_attributes(np.random.default_rng(0)), np.random.default_rng(0), size=16), ValueError, ["size must be at least 32 pixels", "got 16"]),
    ("shapes: split", lambda c: list(shapes.generate_clips(1, split="dev")), ValueError, ["split must be one of ('train', 'held_out', 'all')", "'dev'"]),
    ("shapes: clip count", lambda c: shapes.export_folder(str(c.root / "world"), -1), ValueError, ["num_clips must be a non-negative integer", "-1"]),
    ("shapes: prompt", lambda c: shapes.parse_prompt("a purple blob"), ValueError, ["prompt must be 'a {size} {color} {shape} moving {direction}'", "color in ('red', 'green', 'blue', 'yellow')", "'a purple blob'"]),
    ("shapes: detector frames", lambda c: shapes_scoring.detect_attributes(np.zeros((1, 16, 16, 3))), ValueError, ["frames must hold at least 2 frames", "got 1"]),
    ("shapes: detector range", lambda c: shapes_scoring.detect_attributes(np.full((3, 16, 16, 3), 2.0)), ValueError, ["float frames must be in [0, 1]", "got values in [2, 2]"]),
    ("shapes: metric name", lambda c: shapes_scoring.load_metric("foo"), ValueError, ["name must be one of ('shapes_caption_accuracy', 'shapes_video_accuracy', 'caption_text_similarity')", "'foo'"]),
    ("shapes: reference value", lambda c: shapes_scoring.as_attributes({"color": "purple"}), ValueError, ["reference color must be one of ('red', 'green', 'blue', 'yellow')", "'purple'"]),
    ("shapes: attribute names", lambda c: shapes_scoring.attribute_accuracy([{}], [{"color": "red"}], attributes=["colour"]), ValueError, ["attributes must be a sequence of names from", "['colour']"]),
    ("shapes: attribute value", lambda c: shapes.ShapeAttributes("circle", "purple", "small", "left", "black", "slowly", "center"), ValueError, ["color must be one of ('red', 'green', 'blue', 'yellow')", "'purple'"]),
    ("shapes: start for direction", lambda c: shapes.render(shapes.ShapeAttributes("circle", "red", "small", "left", "black", "slowly", "left"), np.random.default_rng(0)), ValueError, ["attributes.start must keep a shape moving left inside the frame", "'left'"]),
    ("shapes: caption template", lambda c: shapes.sample_attributes(np.random.default_rng(0)).caption(99), ValueError, ["template must be an integer in [0, 2]", "99"]),
    ("shapes: valid starts", lambda c: shapes.valid_starts("diagonal"), ValueError, ["direction must be one of ('left', 'right', 'up', 'down')", "'diagonal'"]),
    ("shapes: split at the call", lambda c: shapes.generate_clips(1, split="dev"), ValueError, ["split must be one of ('train', 'held_out', 'all')", "'dev'"]),
    ("shapes: dataset size", lambda c: shapes.shapes_dataset(1, num_frames=6), ValueError, ["num_frames must be 4k+1 and at least 9", "6"]),
    ("shapes: caption type", lambda c: shapes_scoring.parse_caption(5), TypeError, ["text must be a str", "int"]),
]  # fmt: skip


@pytest.mark.parametrize("name,call,error,fragments", CASES, ids=[case[0] for case in CASES])
def test_misuse_is_a_clear_error(ctx, name, call, error, fragments):
    with pytest.raises(error) as raised:
        call(ctx)
    message = str(raised.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert "Traceback" not in message
    if error is CLIExit:  # exit status 2, the error on one line (argparse prints its usage above it)
        assert raised.value.code == 2 and "error: " in message.strip().splitlines()[-1], message


def test_the_matrix_covers_every_entry_point():
    names = [case[0] for case in CASES]
    assert len(names) == len(set(names)) and len(names) >= 40
    covered = {name.split(":")[0] for name in names}
    assert covered >= {"model", "scheduler", "pipeline", "numerics", "one-liner", "cli", "convert", "train", "shapes"}


def test_poisoned_pipelines_fail_at_the_first_step(ctx):
    """The NaN check stops the loop where the NaN appears: no later step runs."""
    pipe = ctx.poisoned("transformer", "proj_out.bias").pipe
    steps = []
    with pytest.raises(ValueError, match="at denoising step 0 \\(0-based\\) of 3"):
        pipe.generate_video(
            "a red circle",
            num_inference_steps=3,
            callback_on_step_end=lambda p, i, t, kw: steps.append(i) or {},
        )
    assert steps == []
    assert os.path.isdir(ctx.root / "pipe")
