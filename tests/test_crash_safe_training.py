"""kill -9 a training run while it writes a checkpoint, resume it, and get the weights of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers.trainer_utils import get_last_checkpoint

from univigu_hf.testing import build_tiny_pipelines, build_tiny_video_folder
from univigu_hf.training.script import run


ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = str(ROOT / "examples" / "configs" / "tiny_recall.yaml")
COMMON = ["--lr_scheduler_type", "constant", "--save_strategy", "steps", "--save_steps", "2", "--max_steps", "6"]

# The run under test is the real entry point (`examples/train_recall.py` is `run("recall")`) in its own process. The
# only change: when it saves checkpoint-4, after the model and optimizer are written and before the RNG and trainer
# state, it signals the test and waits to be killed, so the SIGKILL lands half-way through a checkpoint save.
KILLED_RUN = """
import sys, time
import torch
torch.set_num_threads({threads})
from univigu_hf.training.script import run
from univigu_hf.training.trainer import UniViGUTrainer

save_rng_state = UniViGUTrainer._save_rng_state

def save_rng_state_then_hang(self, output_dir):
    if self.state.global_step == 4:
        open({ready!r}, "w").close()
        time.sleep(600)
    return save_rng_state(self, output_dir)

UniViGUTrainer._save_rng_state = save_rng_state_then_hang
run("recall", sys.argv[1:])
"""


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash")
    build_tiny_pipelines()[0].save_pretrained(root / "unified")
    build_tiny_video_folder(root / "videos")
    return root


def arguments(assets, output):
    return [
        "--config",
        TINY_CONFIG,
        "--init_from",
        str(assets / "unified"),
        "--dataset_name",
        str(assets / "videos"),
        "--prepared_data_dir",
        str(assets / "prepared"),
        "--output_dir",
        str(output),
        *COMMON,
    ]


def transformer_weights(output) -> dict[str, torch.Tensor]:
    return load_file(str(output / "transformer" / "model.safetensors"))


@pytest.mark.slow
def test_kill_9_mid_checkpoint_then_resume_matches_an_uninterrupted_run(assets, tmp_path):
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    run("recall", arguments(assets, straight))

    ready = tmp_path / "saving-checkpoint-4"
    script = tmp_path / "killed_run.py"
    script.write_text(textwrap.dedent(KILLED_RUN.format(threads=torch.get_num_threads(), ready=str(ready))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [sys.executable, str(script), *arguments(assets, crashed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 240
        while not ready.exists():
            assert process.poll() is None, process.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the training run never reached checkpoint-4"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()

    # Killed half-way through checkpoint-4: its partial files never became a checkpoint.
    assert (crashed / "tmp-checkpoint-4" / "checkpoint-4" / "model.safetensors").is_file()
    assert not (crashed / "checkpoint-4").exists() and not (crashed / "model_index.json").exists()
    assert get_last_checkpoint(str(crashed)) == str(crashed / "checkpoint-2")
    assert (crashed / "checkpoint-2" / "trainer_state.json").is_file()

    run("recall", arguments(assets, crashed) + ["--resume_from_checkpoint", "true"])
    expected, resumed = transformer_weights(straight), transformer_weights(crashed)
    assert expected.keys() == resumed.keys()
    for key in expected:
        assert torch.equal(expected[key], resumed[key]), key
    assert not (crashed / "tmp-checkpoint-4").exists()
    assert sorted(p.name for p in crashed.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
