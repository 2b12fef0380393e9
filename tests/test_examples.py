import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModel

from univigu_hf import UniViGUModel


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(relative_path: str):
    spec = importlib.util.spec_from_file_location(Path(relative_path).stem, EXAMPLES / relative_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_grow_from_wan_tiny_example(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "grow_from_wan.py"),
            "--tiny",
            "--text-vocab-size",
            "40",
            "--output",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    model = AutoModel.from_pretrained(tmp_path)
    assert isinstance(model, UniViGUModel) and model.config.text_vocab_size == 40


def synthetic_shape_latents(count: int, seed: int):
    """Latents whose class is the channel of a 2x2 spot at a random place: separable only by looking where it is."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (count,), generator=generator)
    latents = 0.1 * torch.randn(count, 4, 3, 8, 8, generator=generator)
    for i, label in enumerate(labels.tolist()):
        y, x = torch.randint(0, 7, (2,), generator=generator).tolist()
        latents[i, label, :, y : y + 2, x : x + 2] += 3.0
    return latents, labels


def test_shape_probe_reads_a_code_wherever_it_is():
    probe_latents = load_example("../research/probe_latents.py")
    latents, labels = synthetic_shape_latents(256, seed=0)
    probe = probe_latents.train_shape_probe(latents, labels, epochs=8, seed=0)
    test_latents, test_labels = synthetic_shape_latents(128, seed=1)
    with torch.no_grad():
        accuracy = (probe(test_latents).argmax(dim=1) == test_labels).float().mean().item()
    assert accuracy >= 0.95


def test_probe_latents_reports_every_reading_of_the_default_model(tmp_path):
    probe_latents = load_example("../research/probe_latents.py")
    output = tmp_path / "probe.json"
    argv = ["--probe_clips", "32", "--probe_epochs", "1", "--test_clips", "8", "--samples_per_prompt", "1"]
    argv += ["--seen_prompts", "2", "--steps", "2", "--output", str(output)]
    report = probe_latents.main(argv)
    readings = report["shape_accuracy"]
    assert set(readings) == {
        "real_held_out",
        "real_held_out_training_fit",
        "generated_held_out",
        "decoded_held_out",
        "generated_seen",
        "decoded_seen",
        "video_tokens_held_out",
    }
    num_layers = len(probe_latents.UniViGUPipeline.from_pretrained(report["model"]).transformer.blocks)
    layers = readings.pop("video_tokens_held_out")
    assert list(layers) == ["embedding"] + [f"block_{i}" for i in range(num_layers)]
    assert all(layer["num_samples"] == 8 for layer in layers.values())
    assert readings["real_held_out"]["num_samples"] == readings["real_held_out_training_fit"]["num_samples"] == 8
    assert readings["generated_held_out"]["num_samples"] == readings["decoded_held_out"]["num_samples"] == 12
    assert readings["generated_seen"]["num_samples"] == 2
    assert all(0.0 <= reading["all"] <= 1.0 for reading in readings.values())
    assert output.is_file() and report["command"].endswith(str(output))


def test_shape_probe_rejects_mismatched_labels_and_bad_epochs():
    probe_latents = load_example("../research/probe_latents.py")
    latents, labels = synthetic_shape_latents(8, seed=0)
    with pytest.raises(ValueError, match="labels must be a \\(8,\\) tensor"):
        probe_latents.train_shape_probe(latents, labels[:5], epochs=1, seed=0)
    with pytest.raises(ValueError, match="shape indices in \\[0, 3\\)"):
        probe_latents.train_shape_probe(latents, labels + 3, epochs=1, seed=0)
    with pytest.raises(ValueError, match="epochs must be a positive int, got 0"):
        probe_latents.train_shape_probe(latents, labels, epochs=0, seed=0)


@pytest.mark.parametrize("flag", ["--probe_clips", "--samples_per_prompt", "--steps"])
def test_probe_latents_rejects_non_positive_counts(flag, capsys):
    probe_latents = load_example("../research/probe_latents.py")
    with pytest.raises(SystemExit):
        probe_latents.parse_args([flag, "0"])
    error = capsys.readouterr().err
    assert f"{flag} must be a positive integer" in error and error.rstrip().endswith("got 0")
