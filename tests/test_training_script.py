import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel

from univigu_hf import UniViGUModel, UniViGUPipeline
from univigu_hf.testing import build_tiny_pipelines, build_tiny_video_folder
from univigu_hf.training.script import run


ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = str(ROOT / "examples" / "configs" / "tiny_recall.yaml")


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("training")
    unified, wan = build_tiny_pipelines()
    wan.save_pretrained(root / "wan")
    unified.save_pretrained(root / "unified")
    build_tiny_video_folder(root / "videos")
    return root


def train(stage, assets, output, *extra, callbacks=None):
    argv = ["--config", TINY_CONFIG, "--dataset_name", str(assets / "videos"), "--output_dir", str(output)]
    argv += ["--prepared_data_dir", str(assets / "prepared")]
    if "--init_from" not in extra:
        argv += ["--init_from", str(assets / "unified")]
    return run(stage, argv + list(extra), callbacks=callbacks)


def weights(output):
    return load_file(os.path.join(output, "transformer", "model.safetensors"))


def seeded():
    return torch.Generator().manual_seed(0)


def test_recall_from_wan_writes_a_loadable_pipeline(assets, tmp_path):
    metrics = train("recall", assets, tmp_path / "recall", "--init_from", str(assets / "wan"))
    assert metrics["loss_text"] > 0 and metrics["loss_video"] > 0
    pipe = UniViGUPipeline.from_pretrained(tmp_path / "recall")
    pipe.set_progress_bar_config(disable=True)
    assert pipe.config.default_height == 16  # the trained size becomes the default
    out = pipe.generate_joint("a small red square moving left", generator=seeded())
    assert out.frames.shape == (1, 5, 16, 16, 3) and isinstance(out.text[0], str)
    assert isinstance(AutoModel.from_pretrained(tmp_path / "recall"), UniViGUModel)
    assert not [
        name for _, _, names in os.walk(tmp_path / "recall") for name in names if name.endswith((".bin", ".pt"))
    ]
    summary = json.loads((tmp_path / "recall" / "training_summary.json").read_text())
    assert summary["stage"] == "recall" and summary["num_examples"] == 6


def test_refine_continues_from_recall(assets, tmp_path):
    train("recall", assets, tmp_path / "recall")
    train("refine", assets, tmp_path / "refine", "--init_from", str(tmp_path / "recall"))
    recall, refine = weights(tmp_path / "recall"), weights(tmp_path / "refine")
    assert any(not torch.equal(recall[k], refine[k]) for k in recall)
    summary = json.loads((tmp_path / "refine" / "training_summary.json").read_text())
    assert summary["stage"] == "refine"


def test_text_only_run_keeps_video_weights(assets, tmp_path):
    train("recall", assets, tmp_path / "text", "--trainable", "text")
    before = load_file(str(assets / "unified" / "transformer" / "model.safetensors"))
    after = weights(tmp_path / "text")
    from univigu_hf.models.wan_growth import is_text_parameter

    assert all(torch.equal(before[k], after[k]) for k in before if not is_text_parameter(k))
    assert any(not torch.equal(before[k], after[k]) for k in before if is_text_parameter(k))


@pytest.mark.parametrize("init", ["wan", "unified"])
def test_video_attends_text_switch_trains_a_cacheable_captioner(assets, tmp_path, init):
    output = tmp_path / "no_video_to_text"
    train("recall", assets, output, "--init_from", str(assets / init), "--video_attends_text", "false")
    pipe = UniViGUPipeline.from_pretrained(output)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.transformer.config.video_attends_text is False
    video = torch.rand(5, 3, 16, 16)
    cached = pipe.caption(video, generator=seeded(), num_inference_steps=3).text  # default: video_cache="exact"
    assert cached == pipe.caption(video, generator=seeded(), num_inference_steps=3, video_cache="off").text
    summary = json.loads((output / "training_summary.json").read_text())
    assert summary["stage"] == "recall"


def test_lora_run_saves_an_adapter_that_loads_into_the_pipeline(assets, tmp_path):
    output = tmp_path / "lora"
    train("recall", assets, output, "--use_peft", "--lora_r", "4", "--lora_alpha", "8", "--learning_rate", "0.05")
    assert (output / "adapter" / "adapter_model.safetensors").is_file()
    assert not (output / "adapter" / "training_args.bin").exists()
    base = UniViGUPipeline.from_pretrained(assets / "unified")
    merged = UniViGUPipeline.from_pretrained(output)
    for pipe in (base, merged):
        pipe.set_progress_bar_config(disable=True)
    prompt = "a small red square moving left"
    before = base.generate_video(prompt, generator=seeded(), output_type="latent").frames
    base.transformer.load_adapter(str(output / "adapter"))
    unmerged = base.generate_video(prompt, generator=seeded(), output_type="latent").frames
    from_merged = merged.generate_video(prompt, generator=seeded(), output_type="latent").frames
    assert (unmerged - before).abs().max() > 1e-4
    torch.testing.assert_close(unmerged, from_merged, atol=1e-4, rtol=1e-4)


def test_resume_from_checkpoint_is_exact(assets, tmp_path):
    common = ["--lr_scheduler_type", "constant", "--save_strategy", "steps", "--save_steps", "2"]
    train("recall", assets, tmp_path / "straight", *common, "--max_steps", "4")
    train("recall", assets, tmp_path / "resumed", *common, "--max_steps", "2")
    assert (tmp_path / "resumed" / "checkpoint-2").is_dir()
    train("recall", assets, tmp_path / "resumed", *common, "--max_steps", "4", "--resume_from_checkpoint", "true")
    straight, resumed = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key


@pytest.mark.parametrize(
    "extra,error,message",
    [
        (["--trainable", "audio"], ValueError, "--trainable must be one of \\('all', 'text', 'video'\\), got 'audio'"),
        (["--caption_column", "long_caption"], ValueError, "long_caption"),
        (["--init_from", "/nonexistent/pipeline"], ValueError, "--init_from='/nonexistent/pipeline'"),
        (["--video_foreground_weight", "-1"], ValueError, "--video_foreground_weight must be a finite number >= 0"),
    ],
)
def test_bad_script_arguments(assets, tmp_path, extra, error, message):
    stage = "refine" if "--caption_column" in extra else "recall"
    with pytest.raises(error, match=message):
        train(stage, assets, tmp_path / "bad", *extra)


def test_accelerate_launch_two_cpu_processes(assets, tmp_path):
    output = tmp_path / "ddp"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(ROOT / "examples" / "accelerate_configs" / "cpu_2proc.yaml"),
        str(ROOT / "examples" / "train_recall.py"),
        "--config",
        TINY_CONFIG,
        "--init_from",
        str(assets / "unified"),
        "--dataset_name",
        str(assets / "videos"),
        "--output_dir",
        str(output),
        "--prepared_data_dir",
        str(tmp_path / "prepared"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((output / "training_summary.json").read_text())
    assert summary["world_size"] == 2
    transformers_written = [p for p in output.rglob("model.safetensors") if p.parent.name == "transformer"]
    assert transformers_written == [output / "transformer" / "model.safetensors"]  # one model, by the main process
    assert isinstance(UniViGUPipeline.from_pretrained(output).transformer, UniViGUModel)


def test_callbacks_see_every_step_and_the_model_being_trained(assets, tmp_path):
    from transformers import TrainerCallback

    class Recorder(TrainerCallback):
        steps, models = [], []

        def on_step_end(self, args, state, control, model=None, **kwargs):
            self.steps.append(state.global_step)
            self.models.append(type(model).__name__)

    train("recall", assets, tmp_path / "recall", "--max_steps", "3", callbacks=[Recorder()])
    assert Recorder.steps == [1, 2, 3]
    assert set(Recorder.models) == {"UniViGUModel"}


def test_base_stage_trains_only_the_video_path_and_writes_a_wan_pipeline(assets, tmp_path):
    from diffusers import WanPipeline

    metrics = train("base", assets, tmp_path / "base", "--init_from", str(assets / "wan"), "--trainable", "all")
    assert metrics["loss_video"] > 0 and metrics["loss_text"] == 0
    trained = WanPipeline.from_pretrained(tmp_path / "base")
    original = WanPipeline.from_pretrained(assets / "wan")
    before, after = original.transformer.state_dict(), trained.transformer.state_dict()
    assert set(before) == set(after)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    # The result is the base of the next stage.
    metrics = train("recall", assets, tmp_path / "recall", "--init_from", str(tmp_path / "base"))
    assert metrics["loss_text"] > 0
