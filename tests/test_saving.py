"""Atomic saving (univigu_hf.saving) of pipelines, models and training checkpoints, and safe, strict loading."""

import hashlib
import json
import os
import shutil

import pytest
import torch
from datasets import Dataset
from diffusers import DiffusionPipeline
from transformers import AutoModel, PreTrainedModel, TrainerCallback, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

import univigu_hf.utils.saving as saving
from univigu_hf import UniViGUModel, UniViGUPipeline
from univigu_hf.testing import build_tiny_pipelines
from univigu_hf.training import UniViGUDataCollator, UniViGUTrainer


def snapshot(folder) -> dict[str, str]:
    """Relative path -> sha256 of every file under `folder`."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                files[os.path.relpath(path, folder)] = hashlib.sha256(handle.read()).hexdigest()
    return files


def leftovers(folder) -> list[str]:
    return [name for name in os.listdir(folder) if name.startswith(saving.STAGING_PREFIX)]


@pytest.fixture(scope="module")
def two_pipelines():
    """Two tiny pipelines with different weights: the 'previous' and the 'new' save."""
    return build_tiny_pipelines(seed=0)[0], build_tiny_pipelines(seed=1)[0]


def fail_during(monkeypatch, cls, after_writing: str):
    """Makes `cls.save_pretrained` write a partial file into its folder and then fail, as an interrupted save."""
    original = cls.save_pretrained

    def interrupted(self, save_directory, *args, **kwargs):
        os.makedirs(save_directory, exist_ok=True)
        with open(os.path.join(save_directory, after_writing), "wb") as handle:
            handle.write(b"\0" * 100)  # half a weights file
        raise OSError("No space left on device")

    monkeypatch.setattr(cls, "save_pretrained", interrupted)
    return original


# ---------------------------------------------------------------------------------------------------------------------
# Pipelines and models
# ---------------------------------------------------------------------------------------------------------------------
def test_interrupted_pipeline_save_leaves_the_previous_pipeline(tmp_path, two_pipelines, monkeypatch):
    previous, new = two_pipelines
    target = tmp_path / "pipe"
    previous.save_pretrained(target)
    before = snapshot(target)
    fail_during(monkeypatch, UniViGUModel, "model.safetensors")  # the vae and text encoder are already written
    with pytest.raises(OSError, match="No space left"):
        new.save_pretrained(target)
    assert snapshot(target) == before and not leftovers(target)
    # A save into a folder that does not exist yet leaves no folder at all.
    with pytest.raises(OSError, match="No space left"):
        new.save_pretrained(tmp_path / "fresh")
    assert sorted(os.listdir(tmp_path)) == ["pipe"]
    monkeypatch.undo()
    reloaded = UniViGUPipeline.from_pretrained(target)
    for key, value in previous.transformer.state_dict().items():
        assert torch.equal(value, reloaded.transformer.state_dict()[key]), key


def test_interrupted_model_save_leaves_the_previous_model(tmp_path, two_pipelines, monkeypatch):
    import transformers.modeling_utils

    previous, new = (pipe.transformer for pipe in two_pipelines)
    target = tmp_path / "model"
    previous.save_pretrained(target)
    before = snapshot(target)

    def interrupted(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"\0" * 100)
        raise KeyboardInterrupt  # Ctrl-C half-way through the weights

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        new.save_pretrained(target)
    assert snapshot(target) == before and not leftovers(target)
    monkeypatch.undo()
    assert torch.equal(UniViGUModel.from_pretrained(target).text_proj_out.weight, previous.text_proj_out.weight)


@pytest.fixture(scope="module")
def two_saves(tmp_path_factory, two_pipelines):
    root = tmp_path_factory.mktemp("two_saves")
    for name, pipe in zip(("old", "new"), two_pipelines):
        pipe.save_pretrained(root / name)
    return root / "old", snapshot(root / "old"), snapshot(root / "new")


@pytest.mark.parametrize("interrupt_at", range(16))
def test_commit_is_old_none_or_new_at_every_instant(tmp_path, two_pipelines, two_saves, monkeypatch, interrupt_at):
    """A save killed at any point of its moves: the diffusers side (model_index.json) and the transformers side
    (root config.json) each load the complete previous save, the complete new one, or fail to load ("none")."""
    new = two_pipelines[1]
    old_dir, old, fresh = two_saves
    target = tmp_path / "target"
    shutil.copytree(old_dir, target)

    calls = {"count": 0}
    replace, rename = os.replace, os.rename

    def counting(function):
        def move(*args, **kwargs):
            if calls["count"] == interrupt_at:
                raise SystemExit("killed")
            calls["count"] += 1
            return function(*args, **kwargs)

        return move

    monkeypatch.setattr(saving.os, "replace", counting(replace))
    monkeypatch.setattr(saving.os, "rename", counting(rename))
    try:
        new.save_pretrained(target)
    except SystemExit:
        pass
    monkeypatch.undo()
    now = snapshot(target)
    now = {k: v for k, v in now.items() if not k.startswith(saving.STAGING_PREFIX)}
    diffusers_side = [k for k in fresh if k != "config.json" and not k.startswith("model.safetensors")]
    transformers_side = ["config.json", "model.safetensors.index.json", "transformer/model.safetensors"]
    for files, marker in ((diffusers_side, "model_index.json"), (transformers_side, "config.json")):
        if marker in now:
            state = [now.get(k) for k in files]
            assert state in ([old[k] for k in files], [fresh[k] for k in files]), (interrupt_at, marker)
    if calls["count"] < interrupt_at:  # the save completed
        assert now == fresh


def test_save_keeps_other_files_and_writes_what_the_libraries_write(tmp_path, two_pipelines):
    pipe = two_pipelines[0]
    target = tmp_path / "repo"
    (target / ".git").mkdir(parents=True)
    (target / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (target / "README.md").write_text("my model card\n")
    (target / "checkpoint-10").mkdir()
    pipe.save_pretrained(target)
    plain = tmp_path / "plain"
    DiffusionPipeline.save_pretrained(pipe, str(plain))  # diffusers' own save, not atomic
    written = snapshot(target)
    assert {".git/HEAD", "README.md"} <= set(written) and (target / "checkpoint-10").is_dir()
    assert set(written) - {".git/HEAD", "README.md"} == set(snapshot(plain))
    assert not leftovers(target)

    # A model saved sharded, then unsharded: the stale shards go, as with transformers' own save.
    model, ours, theirs = pipe.transformer, tmp_path / "ours", tmp_path / "theirs"
    for folder, save in (
        (ours, model.save_pretrained),
        (theirs, lambda d, **kw: PreTrainedModel.save_pretrained(model, d, **kw)),
    ):
        save(str(folder), max_shard_size="20KB")
        assert any("-of-" in name for name in os.listdir(folder))
        save(str(folder))
    assert sorted(os.listdir(ours)) == sorted(os.listdir(theirs))
    assert isinstance(AutoModel.from_pretrained(ours), UniViGUModel)


def test_push_to_hub_arguments_pass_through(tmp_path, two_pipelines, monkeypatch):
    """`save_pretrained(push_to_hub=True)` saves atomically, then pushes the complete target folder (not the staging
    folder) with the repo id named after it. The HTTP round trip itself is in test_hub.py."""
    import univigu_hf.hub as hub

    pipe = two_pipelines[0]
    seen = {}

    def push_to_hub(folder, repo_id, **kwargs):
        seen["push"] = (folder, repo_id, sorted(snapshot(folder)), kwargs)

    monkeypatch.setattr(hub, "check_can_push", lambda repo_id: seen.setdefault("checked", repo_id))
    monkeypatch.setattr(hub, "push_to_hub", push_to_hub)
    target = tmp_path / "my-univigu"
    pipe.save_pretrained(str(target), push_to_hub=True, private=True, commit_message="hi")
    assert seen["checked"] == "my-univigu"
    folder, repo_id, files, kwargs = seen["push"]
    assert folder == str(target) and repo_id == "my-univigu"
    assert kwargs["private"] is True and kwargs["commit_message"] == "hi"
    assert {"model_index.json", "config.json", "transformer/model.safetensors"} <= set(files)
    assert (target / "model_index.json").is_file()


def test_save_directory_that_is_a_file_is_an_error(tmp_path, two_pipelines):
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match="save_directory must be a folder"):
        two_pipelines[0].save_pretrained(target)


# ---------------------------------------------------------------------------------------------------------------------
# Training checkpoints
# ---------------------------------------------------------------------------------------------------------------------
def tiny_dataset(pipe, count=4):
    generator = torch.Generator().manual_seed(0)
    ids = pipe.tokenizer("a small red square moving left").input_ids
    with torch.no_grad():
        embeds, _ = pipe.encode_prompt(["a small red square moving left"], do_classifier_free_guidance=False)
    row = {"prompt_embeds": embeds[0, : len(ids)].numpy(), "text_ids": ids, "prompt_ids": ids}
    return Dataset.from_list(
        [{**row, "video_latents": torch.randn(16, 2, 2, 2, generator=generator).numpy()} for _ in range(count)]
    )


def make_trainer(pipe, output_dir, **overrides):
    args = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=2,
        max_steps=4,
        save_strategy="steps",
        save_steps=2,
        report_to="none",
        use_cpu=True,
        seed=0,
        lr_scheduler_type="constant",
    )
    args.update(overrides)
    return UniViGUTrainer(
        model=pipe.transformer,
        args=TrainingArguments(**args),
        train_dataset=tiny_dataset(pipe),
        data_collator=UniViGUDataCollator(max_text_length=12, pad_token_id=0),
        flow_scheduler=pipe.scheduler,
        uniflow_config=None,
        null_condition=torch.zeros(1, 1, 32),
    )


def test_interrupted_checkpoint_leaves_the_previous_one(tmp_path, monkeypatch):
    pipe = build_tiny_pipelines()[0]
    trainer = make_trainer(pipe, tmp_path)
    original = UniViGUTrainer._save_rng_state

    def interrupted(self, output_dir):
        if self.state.global_step == 4:
            raise SystemExit("killed while saving checkpoint-4")  # model and optimizer are written by now
        return original(self, output_dir)

    monkeypatch.setattr(UniViGUTrainer, "_save_rng_state", interrupted)
    with pytest.raises(SystemExit):
        trainer.train()
    assert sorted(name for name in os.listdir(tmp_path) if name.startswith("checkpoint")) == ["checkpoint-2"]
    assert get_last_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-2")
    staged = tmp_path / "tmp-checkpoint-4" / "checkpoint-4"
    assert (staged / "model.safetensors").is_file() and not (staged / "trainer_state.json").exists()
    complete = set(os.listdir(tmp_path / "checkpoint-2"))
    assert {"model.safetensors", "optimizer.pt", "rng_state.pth", "trainer_state.json"} <= complete
    # The next run saving the same step replaces the leftover and completes the checkpoint.
    monkeypatch.undo()
    make_trainer(pipe, tmp_path).train(resume_from_checkpoint=True)
    assert (tmp_path / "checkpoint-4" / "trainer_state.json").is_file() and not (
        tmp_path / "tmp-checkpoint-4"
    ).exists()


def test_checkpoint_rotation_and_best_model_name_final_folders(tmp_path):
    class BestIsStepTwo(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= 2:
                state.best_global_step = 2

    pipe = build_tiny_pipelines()[0]
    trainer = make_trainer(pipe, tmp_path, max_steps=6, save_total_limit=2)
    trainer.add_callback(BestIsStepTwo())
    trainer.train()
    best = str(tmp_path / "checkpoint-2")
    assert trainer.state.best_model_checkpoint == best
    # The best and the latest checkpoint are kept, the other one rotated out; no staging folder is left.
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-2", "checkpoint-6"]
    for step in (2, 6):
        state = json.loads((tmp_path / f"checkpoint-{step}" / "trainer_state.json").read_text())
        assert state["best_model_checkpoint"] == best and state["global_step"] == step


# ---------------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(tmp_path_factory, two_pipelines):
    folder = tmp_path_factory.mktemp("saved") / "pipe"
    two_pipelines[0].save_pretrained(folder)
    return folder


def corrupted_copy(saved, tmp_path, mutate):
    folder = tmp_path / "copy"
    shutil.copytree(saved, folder)
    mutate(folder)
    return folder


def truncate(relative):
    def mutate(folder):
        path = folder / relative
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    return mutate


def edit_json(*relatives, **changes):
    def mutate(folder):
        for relative in relatives:
            path = folder / relative
            path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))

    return mutate


class Payload:
    """A pickle that runs code when loaded."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/univigu_pwned",))


def unsafe_pickle(relative, remove):
    def mutate(folder):
        os.remove(folder / remove)
        torch.save({"weight": Payload()}, folder / relative)

    return mutate


def grow_tokenizer(folder):
    path = folder / "tokenizer" / "tokenizer.json"
    tokenizer = json.loads(path.read_text())
    vocab = tokenizer["model"]["vocab"]
    for index in range(40):
        vocab[f"extra{index}"] = len(vocab)
    path.write_text(json.dumps(tokenizer))


CONFIGS = ("transformer/config.json", "config.json")  # the transformer's, and its copy for transformers at the root
LOADING_CASES = [
    ("truncated transformer", truncate("transformer/model.safetensors"), OSError, ["transformer/model.safetensors", "truncated or corrupted"]),
    ("truncated vae", truncate("vae/diffusion_pytorch_model.safetensors"), OSError, ["vae/diffusion_pytorch_model.safetensors", "truncated or corrupted"]),
    ("truncated text encoder", truncate("text_encoder/model.safetensors"), OSError, ["text_encoder/model.safetensors", "truncated or corrupted"]),
    ("config: more layers", edit_json(*CONFIGS, num_layers=3), ValueError, ["do not match its config.json", "num_layers=3", "missing"]),
    ("config: fewer layers", edit_json(*CONFIGS, num_layers=1), ValueError, ["do not match its config.json", "num_layers=1", "no place for"]),
    ("config: vocabulary", edit_json(*CONFIGS, text_vocab_size=40), ValueError, ["text_embedding.weight checkpoint (31, 24) vs config (40, 24)"]),
    ("text encoder config", edit_json("text_encoder/config.json", num_layers=3), ValueError, ["text_encoder weights", "missing"]),
    ("tokenizer larger than the vocabulary", grow_tokenizer, ValueError, ["tokenizer", "71 tokens", "text_vocab_size=31", "at most"]),
    ("scheduler vocabulary", edit_json("scheduler/scheduler_config.json", text_vocab_size=100), ValueError, ["scheduler", "text_vocab_size=100", "at most 31"]),
    ("unsafe pickle: transformer", unsafe_pickle("transformer/pytorch_model.bin", "transformer/model.safetensors"), OSError, ["transformer/pytorch_model.bin", "not weights-only"]),
    ("unsafe pickle: vae", unsafe_pickle("vae/diffusion_pytorch_model.bin", "vae/diffusion_pytorch_model.safetensors"), OSError, ["vae/diffusion_pytorch_model.bin", "not weights-only"]),
]  # fmt: skip


@pytest.mark.parametrize("name,mutate,error,fragments", LOADING_CASES, ids=[case[0] for case in LOADING_CASES])
def test_bad_checkpoints_are_a_clear_error_before_any_model_is_returned(
    saved, tmp_path, name, mutate, error, fragments
):
    if os.path.exists("/tmp/univigu_pwned"):
        os.remove("/tmp/univigu_pwned")
    folder = corrupted_copy(saved, tmp_path, mutate)
    with pytest.raises(error) as raised:
        UniViGUPipeline.from_pretrained(folder)
    for fragment in fragments:
        assert fragment in str(raised.value), (fragment, str(raised.value))
    if name.startswith(("truncated transformer", "config:", "unsafe pickle: transformer")):
        with pytest.raises(error):  # the transformers side, on the same folder
            AutoModel.from_pretrained(folder)
    assert not os.path.exists("/tmp/univigu_pwned")


def test_ignore_mismatched_sizes_still_reinitialises_on_request(saved, tmp_path):
    folder = corrupted_copy(saved, tmp_path, edit_json("transformer/config.json", text_vocab_size=40))
    model, info = UniViGUModel.from_pretrained(
        folder / "transformer", ignore_mismatched_sizes=True, output_loading_info=True
    )
    assert model.text_embedding.weight.shape == (40, 24) and len(info["mismatched_keys"]) == 3
