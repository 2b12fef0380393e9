"""Model cards and Hub publishing (`univigu_hf.hub`), with real HTTP round trips against a loopback fake Hub.

The Hub-facing code runs in subprocesses with `HF_ENDPOINT` pointing at `tests/fake_hub.py` (the test session itself
stays offline, `HF_HUB_OFFLINE=1`); nothing in `huggingface_hub` is mocked.
"""

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from peft import LoraConfig, get_peft_model
from transformers import AutoModel

from fake_hub import TOKEN, FakeHub
from univigu_hf import UniViGUModel, UniViGUPipeline
from univigu_hf.hub import (
    HubPushError,
    card_metadata,
    check_can_push,
    create_model_card,
    eval_results_from_metrics,
    push_to_hub,
    training_stages,
)
from univigu_hf.testing import build_tiny_pipelines, build_tiny_video_folder


ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
SHAPES_RESULTS = ROOT / "docs" / "results" / "shapes.json"
PROMPT = "a small red square moving left"
METRICS = {
    "dataset": {"name": "Tiny clips", "type": "tiny-clips"},
    "results": [
        {"task": "video-to-text", "split": "test", "metrics": {"shape_accuracy": 0.5, "bleu": 12.5, "num_samples": 8}}
    ],
}


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` with the sha256 of its bytes (to prove a push leaves local files untouched)."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def run_python(*code: str, hub: FakeHub, home: Path, token: str | None = TOKEN, tmpdir: Path | None = None):
    """Runs the `code` pieces (each dedented) in a fresh interpreter that talks to the fake Hub (online mode, its own
    HF_HOME cache)."""
    env = dict(os.environ)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env.pop(name, None)
    env.update(
        HF_ENDPOINT=hub.endpoint,
        HF_HUB_OFFLINE="0",
        HF_HOME=str(home),
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        # This checkout's sources (as pytest's `pythonpath`), then the test helpers (conftest, fake_hub).
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(TESTS), env.get("PYTHONPATH", "")]),
    )
    if token:
        env["HF_TOKEN"] = token
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    result = subprocess.run(
        [sys.executable, "-c", "\n".join(textwrap.dedent(piece) for piece in code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, f"subprocess failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
    return result


def card_text(repo) -> str:
    return repo.head[2]["README.md"].decode("utf-8")


# ----------------------------------------------------------------------------------------------------------------------
# Cards (offline)
# ----------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A saved tiny pipeline, a LoRA adapter for its transformer, and a bare transformer folder."""
    root = tmp_path_factory.mktemp("hub_local")
    pipe = build_tiny_pipelines()[0]
    pipe.save_pretrained(root / "pipeline")
    transformer = UniViGUModel.from_pretrained(root / "pipeline" / "transformer")
    transformer.save_pretrained(root / "model")
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["to_q", "to_k", "to_v"], init_lora_weights=False)
    torch.manual_seed(0)
    peft_model = get_peft_model(transformer, lora)
    peft_model.save_pretrained(root / "adapter")
    (root / "metrics.json").write_text(json.dumps(METRICS))
    (root / "bad.json").write_text("{not json")
    return root


def test_pipeline_card_metadata_and_sections(saved):
    card = create_model_card(saved / "pipeline", repo_id="user/tiny-univigu", metrics=saved / "metrics.json")
    metadata = card_metadata(card)
    assert metadata["library_name"] == "diffusers" and metadata["pipeline_tag"] == "text-to-video"
    assert metadata["license"] == "apache-2.0"
    assert {"univigu", "video-to-text", "diffusers:UniViGUPipeline"} <= set(metadata["tags"])
    result = metadata["model-index"][0]["results"][0]
    assert result["task"] == {"type": "video-text-to-text", "name": "Video captioning"}  # the Hub's task id
    assert result["dataset"] == {"name": "Tiny clips", "type": "tiny-clips", "split": "test"}
    assert {m["type"]: m["value"] for m in result["metrics"]} == {"accuracy": 0.5, "bleu": 12.5}
    text = str(card)
    for section in ("## Model", "## Usage", "## Training details", "## Evaluation", "## Limitations", "## Citation"):
        assert section in text
    assert 'UniViGUPipeline.from_pretrained("user/tiny-univigu")' in text
    assert 'pipeline("video-to-text", model="user/tiny-univigu")' in text
    assert "Training stage: not recorded" in text and "arXiv" in text and "2604.08121" in text
    assert "| shape accuracy | 0.5 |" in text
    # The card reparses: huggingface_hub reads the same metadata back.
    reparsed = ModelCard(text)
    assert reparsed.data.library_name == "diffusers" and reparsed.data.eval_results[0].metric_value == 0.5


def test_card_from_an_object_matches_the_card_from_its_folder(saved):
    pipe = UniViGUPipeline.from_pretrained(saved / "pipeline")
    from_object = create_model_card(pipe, repo_id="user/x")
    from_folder = create_model_card(saved / "pipeline", repo_id="user/x")
    assert card_metadata(from_object) == card_metadata(from_folder)
    parameters = sum(p.numel() for c in (pipe.vae, pipe.text_encoder, pipe.transformer) for p in c.parameters())
    for card in (from_object, from_folder):
        assert f"({parameters:,})" in str(card)


def test_adapter_and_model_cards(saved):
    adapter = create_model_card(saved / "adapter", repo_id="user/tiny-lora", base_model="user/tiny-univigu")
    metadata = card_metadata(adapter)
    assert metadata["library_name"] == "peft" and metadata["base_model"] == "user/tiny-univigu"
    assert metadata["base_model_relation"] == "adapter" and "lora" in metadata["tags"]
    text = str(adapter)
    assert "r = 4, alpha = 8" in text and "to_k, to_q, to_v" in text
    assert 'PeftModel.from_pretrained(transformer, "user/tiny-lora")' in text
    model = create_model_card(saved / "model", repo_id="user/tiny-transformer")
    assert card_metadata(model)["library_name"] == "transformers"
    assert 'AutoModel.from_pretrained("user/tiny-transformer")' in str(model)


def test_training_record_fills_the_training_section(saved, tmp_path):
    summary = {
        "stage": "refine",
        "init_from": "/home/me/runs/recall",
        "metrics": {"loss_video": 0.25, "loss_text": 0.125},
        "trainable": "all",
        "dataset": "someone/video-captions",
        "num_examples": 20000,
        "global_step": 1500,
        "lora": {"r": 16, "lora_alpha": 32, "target_modules": ["to_q", "to_v"]},
        "training_args": {"learning_rate": 1e-5, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 4},
        "world_size": 2,
    }
    recall = dict(summary, stage="recall", global_step=500, lora=None, init_from="Wan-AI/Wan2.1")
    recall.update(dataset="data/clips", dataset_is_local=True)  # a relative local folder that looks like a repo id
    summary = dict(summary, stages=[recall, dict(summary)])
    card = create_model_card(saved / "pipeline", repo_id="user/x", training=summary)
    metadata = card_metadata(card)
    assert metadata["base_model"] == "Wan-AI/Wan2.1"  # the first stage's Hub init_from
    assert metadata["datasets"] == ["someone/video-captions"]
    text = str(card)
    assert "Training stage: Capability Refinement" in text
    assert (
        "| Knowledge Recall | 500 | a local dataset (`clips`) |" in text and "| Capability Refinement | 1500 |" in text
    )
    assert "LoRA r=16, alpha=32 on to_q, to_v" in text and "| 16 |" in text  # batch 2 x 4 x 2 processes
    assert "/home/me" not in text  # local paths stay local: only the folder name is shown
    assert training_stages(summary)[0]["stage"] == "recall" and training_stages({"stage": "recall"}) == [
        {"stage": "recall"}
    ]
    # The same record found next to the checkpoint (what the training scripts write).
    record_dir = tmp_path / "with_record"
    record_dir.mkdir()
    for item in (saved / "pipeline").iterdir():
        os.symlink(item, record_dir / item.name)
    (record_dir / "training_summary.json").write_text(json.dumps(summary))
    assert "Training stage: Capability Refinement" in str(create_model_card(record_dir))


def test_shapes_world_results_become_model_index(saved):
    results = eval_results_from_metrics(json.loads(SHAPES_RESULTS.read_text()))
    tasks = {r["section"]: r["task"] for r in results}
    assert tasks == {
        "captioning_held_out": "video-text-to-text",
        "captioning_seen_combinations": "video-text-to-text",
        "text_to_video": "text-to-video",
        "joint": "any-to-any",
    }
    held_out = results[0]
    assert held_out["dataset"] == "Shapes world" and held_out["num_samples"] == 240
    assert "num_samples" not in held_out["metrics"]
    card = create_model_card(saved / "pipeline", metrics=SHAPES_RESULTS, card_data={"tags": ["shapes-world"]})
    metadata = card_metadata(card)
    assert len(metadata["model-index"][0]["results"]) == 4 and metadata["tags"][-1] == "shapes-world"
    flat = eval_results_from_metrics({"accuracy": 0.75, "split": "test"}, default_task="video-to-text")
    assert flat[0]["metrics"] == {"accuracy": 0.75} and flat[0]["split"] == "test"
    assert flat[0]["task"] == "video-text-to-text"  # "video-to-text" is an alias of the Hub's task id
    assert eval_results_from_metrics({"accuracy": 0.75, "note": "x"}) == []  # not a flat layout


def test_wan_base_stage_card_and_untrained_growth(tmp_path):
    _, wan = build_tiny_pipelines()
    wan.save_pretrained(tmp_path / "base")
    card = create_model_card(tmp_path / "base", repo_id="user/tiny-wan")
    assert card_metadata(card)["tags"][-1] == "diffusers:WanPipeline"
    assert "Wan text-to-video base" in str(card) and 'WanPipeline.from_pretrained("user/tiny-wan")' in str(card)
    grown = UniViGUPipeline.from_wan(wan)  # a fresh (all-zero) text head: the card says the text branch is untrained
    assert "Training stage: untrained text branch" in str(create_model_card(grown))
    grown.save_pretrained(tmp_path / "grown")
    assert "Training stage: untrained text branch" in str(create_model_card(tmp_path / "grown"))
    assert "Training stage: untrained" in str(create_model_card(grown.transformer))


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda s: create_model_card(s / "nowhere"), ValueError, "is not a folder"),
        (lambda s: create_model_card(s), ValueError, "not a checkpoint folder"),
        (lambda s: create_model_card(42), TypeError, "expected a UniViGUPipeline"),
        (lambda s: create_model_card(s / "pipeline", metrics=s / "missing.json"), FileNotFoundError, "metrics"),
        (
            lambda s: create_model_card(s / "pipeline", metrics=s / "pipeline" / "model_index.json"),
            ValueError,
            "holds no evaluation results",
        ),
        (lambda s: create_model_card(s / "pipeline", metrics=s / "bad.json"), ValueError, "not valid JSON"),
        (lambda s: create_model_card(s / "pipeline", metrics=3.5), TypeError, "metrics must be"),
        (lambda s: create_model_card(s / "pipeline", training=[1]), TypeError, "training"),
        (lambda s: create_model_card(s / "pipeline", repo_id=""), ValueError, "repo_id"),
        (lambda s: create_model_card(s / "pipeline", base_model=3), TypeError, "base_model"),
        (lambda s: push_to_hub(s / "pipeline", "a/b/c"), ValueError, "repo_id must be"),
        (lambda s: push_to_hub(s / "pipeline", "user/x", private="yes"), TypeError, "private"),
        (lambda s: push_to_hub(s / "pipeline", "user/x", commit_message=1), TypeError, "commit_message"),
        (lambda s: push_to_hub(s / "pipeline", "user/x", model_card=1), TypeError, "model_card"),
        (lambda s: push_to_hub(s / "pipeline", "user/x"), HubPushError, "HF_HUB_OFFLINE"),
        (lambda s: check_can_push("bad id", argument="--hub_model_id"), ValueError, "--hub_model_id"),
    ],
    ids=lambda value: getattr(value, "__name__", None) if isinstance(value, type) else None,
)
def test_bad_input_is_a_clear_error(saved, call, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(")):
        call(saved)


def test_metrics_sections_need_numbers():
    with pytest.raises(ValueError, match="'metrics' dict"):
        eval_results_from_metrics({"results": [{"task": "video-to-text"}]})
    assert eval_results_from_metrics({"settings": {"steps": 4}}) == []  # nothing metric-like: no results


# ----------------------------------------------------------------------------------------------------------------------
# Real HTTP round trips against the fake Hub
# ----------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hub():
    server = FakeHub.start()
    yield server
    server.stop()


# Every way to load a published repository, run the same way on the local folders and on the repo ids (each in a fresh
# interpreter: CPU kernels can differ in the last bit between processes with different allocation histories).
OUTPUTS_CODE = """
import json
import numpy as np
import torch
import transformers
import univigu_hf
from peft import PeftModel
from univigu_hf.testing import make_inputs
from univigu_hf import UniViGUModel, UniViGUPipeline

PIPELINE, ADAPTER, OUT = {pipeline!r}, {adapter!r}, {out!r}

def seeded(seed):
    return torch.Generator().manual_seed(seed)

steps = {{"num_inference_steps": 2}}
pipe = UniViGUPipeline.from_pretrained(PIPELINE)
pipe.set_progress_bar_config(disable=True)
frames = pipe.generate_video({prompt!r}, generator=seeded(0), **steps).frames
caption = pipe.caption(frames[0], generator=seeded(1), **steps).text
joint = pipe.generate_joint({prompt!r}, generator=seeded(2), **steps)
inputs = make_inputs(batch_size=1, vocab=pipe.transformer.config.text_vocab_size)
model = transformers.AutoModel.from_pretrained(PIPELINE)
captioner = transformers.pipeline("video-to-text", model=PIPELINE, device="cpu")
captioner.univigu_pipeline.set_progress_bar_config(disable=True)
one_liner = captioner(frames[0], generator=seeded(1), **steps)[0]["generated_text"]
adapter = PeftModel.from_pretrained(UniViGUModel.from_pretrained(PIPELINE, subfolder="transformer"), ADAPTER)
adapter_via_auto = transformers.AutoModel.from_pretrained(ADAPTER)  # finds its base through adapter_config.json
with torch.no_grad():
    logits = model(**inputs).text_logits
    adapted = adapter(**inputs).text_logits
    adapted_auto = adapter_via_auto(**inputs).text_logits
np.savez(
    OUT + ".npz", frames=frames, joint_frames=joint.frames, logits=logits.numpy(), adapted=adapted.numpy(),
    adapted_auto=adapted_auto.numpy(),
)
outputs = {{"caption": caption, "joint_text": joint.text, "one_liner": one_liner, "auto": type(model).__name__}}
"""
HUB_CHECKS_CODE = """
from huggingface_hub import HfApi, ModelCard
from huggingface_hub.errors import RepositoryNotFoundError

try:
    HfApi().model_info("tester/tiny-univigu-private", token=False)
    outputs["private_without_token"] = "visible"
except RepositoryNotFoundError:
    outputs["private_without_token"] = "not found"
outputs["private_class"] = type(UniViGUPipeline.from_pretrained("tester/tiny-univigu-private")).__name__
outputs["card"] = ModelCard.load("tester/tiny-univigu").data.to_dict()
"""
SAVE_OUTPUTS_CODE = """
json.dump(outputs, open(OUT + ".json", "w"))
"""


@pytest.fixture(scope="module")
def published(hub, saved, tmp_path_factory):
    """Pushes a pipeline object, a private copy of its folder, its transformer and a LoRA adapter folder."""
    work = tmp_path_factory.mktemp("hub_push")
    before = {name: tree_digest(saved / name) for name in ("pipeline", "adapter", "model")}
    # First the reference outputs from the local folders (the download test compares against them), then the pushes.
    reference = OUTPUTS_CODE.format(
        pipeline=str(saved / "pipeline"), adapter=str(saved / "adapter"), out=str(work / "local"), prompt=PROMPT
    )
    run_python(
        reference,
        SAVE_OUTPUTS_CODE,
        f"""
        import json
        import univigu_hf
        from univigu_hf import UniViGUModel, UniViGUPipeline
        from univigu_hf.hub import push_to_hub

        pipe = UniViGUPipeline.from_pretrained({str(saved / "pipeline")!r})
        # Only a name: the Hub puts it in the token's namespace.
        public = pipe.push_to_hub("tiny-univigu", metrics={str(saved / "metrics.json")!r}, example_prompt={PROMPT!r})
        private = push_to_hub({str(saved / "pipeline")!r}, "tester/tiny-univigu-private", private=True)
        adapter = push_to_hub({str(saved / "adapter")!r}, "tester/tiny-lora", base_model=public.repo_url.repo_id)
        model = UniViGUModel.from_pretrained({str(saved / "model")!r})
        bare = model.push_to_hub("tester/tiny-transformer", commit_message="the transformer alone")
        pipe.save_pretrained({str(work / "saved")!r}, push_to_hub=True, repo_id="tester/tiny-saved", private=True)
        from univigu_hf.cli import main
        assert main(["push", {str(saved / "adapter")!r}, "tester/tiny-cli", "--private", "--json"]) == 0
        json.dump(
            {{"public": public.repo_url.repo_id, "url": public.commit_url, "commit": public.oid, "bare": str(bare)}},
            open({str(work / "pushed.json")!r}, "w"),
        )
        """,
        hub=hub,
        home=work / "home",
        tmpdir=work,
    )
    after = {name: tree_digest(saved / name) for name in ("pipeline", "adapter", "model")}
    return {"work": work, "pushed": json.loads((work / "pushed.json").read_text()), "before": before, "after": after}


def test_push_creates_repositories_with_cards(hub, published, saved):
    pushed = published["pushed"]
    assert pushed["public"] == "tester/tiny-univigu"
    assert pushed["url"] == f"{hub.endpoint}/tester/tiny-univigu/commit/{pushed['commit']}"
    repo = hub.repos["tester/tiny-univigu"]
    assert not repo.private and hub.repos["tester/tiny-univigu-private"].private
    files = set(repo.head[2])
    local = set(tree_digest(saved / "pipeline"))
    assert local | {"README.md", ".gitattributes"} == files  # the whole pipeline folder, one commit, plus the card
    assert len(repo.commits) == 2 and repo.head[1] == "Upload UniViGU pipeline"
    metadata = card_metadata(card_text(repo))
    assert metadata["model-index"][0]["results"][0]["metrics"][0]["value"] == 0.5
    assert PROMPT in card_text(repo)
    adapter_repo = hub.repos["tester/tiny-lora"]
    assert card_metadata(card_text(adapter_repo))["base_model"] == "tester/tiny-univigu"
    # The uploaded adapter config names the Hub base; the local one still names the local folder.
    assert json.loads(adapter_repo.head[2]["adapter_config.json"])["base_model_name_or_path"] == "tester/tiny-univigu"
    local_config = json.loads((saved / "adapter" / "adapter_config.json").read_text())
    assert local_config["base_model_name_or_path"] != "tester/tiny-univigu"
    bare = hub.repos["tester/tiny-transformer"]
    assert bare.head[1] == "the transformer alone" and card_metadata(card_text(bare))["library_name"] == "transformers"
    saved_repo = hub.repos["tester/tiny-saved"]  # save_pretrained(push_to_hub=True): saved, then pushed with a card
    assert saved_repo.private and set(saved_repo.head[2]) == set(tree_digest(published["work"] / "saved")) | {
        "README.md",
        ".gitattributes",
    }
    assert card_metadata(card_text(hub.repos["tester/tiny-cli"]))["library_name"] == "peft"  # `univigu push`
    assert published["before"] == published["after"]  # nothing local was written (no README.md, no edits)
    assert not [p for p in published["work"].iterdir() if p.name.startswith("univigu-push-")]  # temp folders gone


def test_download_into_an_empty_cache_reproduces_outputs(hub, published, saved):
    work = published["work"]
    home = work / "fresh_home"
    assert not home.exists()
    remote = OUTPUTS_CODE.format(
        pipeline="tester/tiny-univigu", adapter="tester/tiny-lora", out=str(work / "hub"), prompt=PROMPT
    )
    run_python(remote, HUB_CHECKS_CODE, SAVE_OUTPUTS_CODE, hub=hub, home=home)

    expected, arrays = np.load(work / "local.npz"), np.load(work / "hub.npz")
    for name in ("frames", "joint_frames", "logits", "adapted", "adapted_auto"):
        assert np.array_equal(arrays[name], expected[name]), name
    assert not np.array_equal(arrays["adapted"], arrays["logits"])  # the adapter does something
    assert np.array_equal(arrays["adapted_auto"], arrays["adapted"])
    want, got = json.loads((work / "local.json").read_text()), json.loads((work / "hub.json").read_text())
    for name in ("caption", "joint_text", "one_liner", "auto"):
        assert got[name] == want[name], name
    assert got["one_liner"] == got["caption"][0] and got["auto"] == "UniViGUModel"
    assert got["private_without_token"] == "not found" and got["private_class"] == "UniViGUPipeline"
    card = got["card"]
    assert card["library_name"] == "diffusers" and card["model-index"][0]["name"] == "tiny-univigu"
    assert (home / "hub" / "models--tester--tiny-univigu").is_dir()  # really downloaded into the fresh cache


def test_failed_upload_is_a_clear_error_and_leaves_local_files_untouched(hub, saved, tmp_path):
    before = tree_digest(saved / "pipeline")
    hub.fail("POST", r"/api/models/tester/broken[^/]*/commit/", 500, "simulated storage outage", times=2)
    run_python(
        f"""
        import json
        from univigu_hf import UniViGUPipeline
        from univigu_hf.hub import HubPushError, push_to_hub

        errors = {{}}
        for name, push in {{
            "folder": lambda: push_to_hub({str(saved / "pipeline")!r}, "tester/broken"),
            "object": lambda: UniViGUPipeline.from_pretrained({str(saved / "pipeline")!r}).push_to_hub("broken-2"),
            "token": lambda: push_to_hub({str(saved / "pipeline")!r}, "tester/other", token="hf_not_a_token"),
            "namespace": lambda: push_to_hub({str(saved / "pipeline")!r}, "someone-else/mine"),
            "card": lambda: push_to_hub({str(saved / "pipeline")!r}, "tester/bad-card", model_card="# no metadata"),
            "unreachable": lambda: push_to_hub({str(saved / "pipeline")!r}, "tester/x", endpoint="http://127.0.0.1:9"),
        }}.items():
            try:
                push()
                errors[name] = None
            except HubPushError as error:
                errors[name] = str(error)
        json.dump(errors, open({str(tmp_path / "errors.json")!r}, "w"))
        """,
        hub=hub,
        home=tmp_path / "home",
        tmpdir=tmp_path,
    )
    errors = json.loads((tmp_path / "errors.json").read_text())
    for name in ("folder", "object"):
        message = errors[name]
        assert message is not None, name
        assert "HTTP 500" in message and "simulated storage outage" in message and "committing" in message
        assert "Nothing was changed locally" in message and hub.endpoint in message
    assert str(saved / "pipeline") in errors["folder"]
    # The repositories were created, but no commit landed.
    assert len(hub.repos["tester/broken"].commits) == 1 and len(hub.repos["tester/broken-2"].commits) == 1
    assert (
        "HTTP 401" in errors["token"]
        and "hf auth login" in errors["token"]
        and "creating the repository" in (errors["token"])
    )
    assert "HTTP 403" in errors["namespace"] and "someone-else" in errors["namespace"]
    assert "tester/other" not in hub.repos and "someone-else/mine" not in hub.repos
    assert "rejected the model card's metadata" in errors["card"] and "no YAML metadata" in errors["card"]
    assert len(hub.repos["tester/bad-card"].commits) == 1
    assert "could not reach the Hub" in errors["unreachable"] and "Connection refused" in errors["unreachable"]
    assert tree_digest(saved / "pipeline") == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("univigu-push-")]


def test_training_script_push_to_hub(hub, saved, tmp_path):
    videos = build_tiny_video_folder(tmp_path / "videos")
    output = tmp_path / "recall-lora"
    config = ROOT / "examples" / "configs" / "tiny_recall.yaml"
    hub.fail("POST", r"/api/models/tester/tiny-recall-broken/commit/", 503, "read-only maintenance")
    run_python(
        f"""
        from univigu_hf.hub import HubPushError
        from univigu_hf.training.script import run

        run("recall", [
            "--config", {str(config)!r}, "--init_from", {str(saved / "pipeline")!r}, "--dataset_name", {videos!r},
            "--output_dir", {str(output)!r}, "--use_peft", "--lora_r", "4", "--lora_alpha", "8",
            "--save_strategy", "steps", "--save_steps", "2",
            "--push_to_hub", "--hub_model_id", "tester/tiny-recall", "--hub_metrics_file", {str(saved / "metrics.json")!r},
        ])
        try:  # a push that fails after training: the error says where the result is and how to publish it later
            run("recall", [
                "--config", {str(config)!r}, "--init_from", {str(saved / "pipeline")!r}, "--dataset_name", {videos!r},
                "--output_dir", {str(tmp_path / "broken")!r}, "--push_to_hub", "--hub_model_id", "tester/tiny-recall-broken",
            ])
        except HubPushError as error:
            open({str(tmp_path / "error.txt")!r}, "w").write(str(error))
        """,
        hub=hub,
        home=tmp_path / "home",
    )
    error = (tmp_path / "error.txt").read_text()
    assert "HTTP 503" in error and "read-only maintenance" in error
    assert f"univigu push {tmp_path / 'broken'} tester/tiny-recall-broken" in error
    assert (tmp_path / "broken" / "model_index.json").is_file()  # the trained pipeline is there
    local = set(tree_digest(output))
    assert any(p.startswith("checkpoint-2/") for p in local) and any(p.startswith("prepared_data/") for p in local)
    repo = hub.repos["tester/tiny-recall"]
    files = set(repo.head[2])
    assert {"README.md", "model_index.json", "config.json", "transformer/model.safetensors"} <= files
    assert {"adapter/adapter_config.json", "adapter/adapter_model.safetensors", "training_summary.json"} <= files
    assert not [p for p in files if p.startswith(("checkpoint-", "prepared_data/")) or p.endswith(".bin")]
    assert repo.head[1] == "Uni-ViGU recall stage: 4 steps" and len(repo.commits) == 2  # one push, at the end
    text = card_text(repo)
    metadata = card_metadata(text)
    assert {"lora", "peft", "univigu"} <= set(metadata["tags"]) and "model-index" in metadata
    assert "Training stage: Knowledge Recall" in text and "LoRA r=4, alpha=8" in text
    assert 'PeftModel.from_pretrained(base_transformer, "tester/tiny-recall", subfolder="adapter")' in text
    assert "| Knowledge Recall | 4 | a local dataset (`videos`) | 6 |" in text
    summary = json.loads((output / "training_summary.json").read_text())
    assert summary["global_step"] == 4 and summary["lora"]["r"] == 4 and summary["stages"][-1]["stage"] == "recall"
    assert summary["training_args"]["push_to_hub"] is True


def test_training_script_refuses_to_push_offline(saved, tmp_path):
    from univigu_hf.training.script import run

    argv = [
        "--config",
        str(ROOT / "examples" / "configs" / "tiny_recall.yaml"),
        "--init_from",
        str(saved / "pipeline"),
    ]
    argv += ["--dataset_name", str(tmp_path), "--output_dir", str(tmp_path / "out"), "--push_to_hub"]
    with pytest.raises(HubPushError, match="HF_HUB_OFFLINE"):
        run("recall", argv)
    assert not (tmp_path / "out").exists()  # failed before training
    with pytest.raises(FileNotFoundError, match="--hub_metrics_file"):
        run("recall", [*argv[:-1], "--hub_metrics_file", str(tmp_path / "none.json")])


def test_save_pretrained_with_push_to_hub_offline_is_a_clear_error(tmp_path, saved):
    pipe = UniViGUPipeline.from_pretrained(saved / "pipeline")
    with pytest.raises(HubPushError, match="offline"):
        pipe.save_pretrained(tmp_path / "saved", push_to_hub=True, repo_id="user/x")
    assert not (tmp_path / "saved").exists()  # checked before saving
    pipe.save_pretrained(tmp_path / "saved")  # without push_to_hub: an ordinary save
    with pytest.raises(ValueError, match="safetensors"):
        pipe.push_to_hub("user/x", safe_serialization=False)
    assert isinstance(AutoModel.from_pretrained(tmp_path / "saved"), UniViGUModel)


def test_card_and_push_commands(saved, tmp_path, capsys):
    from univigu_hf.cli import main

    assert (
        main(["card", str(saved / "pipeline"), "--repo-id", "me/tiny", "--output", str(tmp_path / "README.md")]) == 0
    )
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.library_name == "diffusers" and 'from_pretrained("me/tiny")' in card.text
    capsys.readouterr()
    assert main(["card", str(saved / "adapter"), "--metrics", str(saved / "metrics.json"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["metadata"]["library_name"] == "peft" and report["card"].startswith("---")
    assert main(["card", str(tmp_path)]) == 2
    assert "not a checkpoint folder" in capsys.readouterr().err
    assert main(["push", str(saved / "pipeline"), "me/tiny"]) == 2  # offline in the tests
    assert "HF_HUB_OFFLINE" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------------------
# A diffusers-format LoRA folder (`UniViGUPipeline.save_lora_weights`: pytorch_lora_weights.safetensors)
# ----------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def diffusers_lora(tmp_path_factory):
    """Two `save_lora_weights` folders: one whose LoRA metadata names a Hub base model, one with no metadata."""
    from peft.utils import get_peft_model_state_dict

    root = tmp_path_factory.mktemp("hub_diffusers_lora")
    pipe = build_tiny_pipelines()[0]
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["to_q", "to_v"], init_lora_weights=False)
    pipe.transformer.add_adapter(config, adapter_name="style")
    layers = get_peft_model_state_dict(pipe.transformer, adapter_name="style")
    metadata = dict(config.to_dict(), base_model_name_or_path="tester/tiny-univigu")
    UniViGUPipeline.save_lora_weights(
        root / "with_metadata", transformer_lora_layers=layers, transformer_lora_adapter_metadata=metadata
    )
    UniViGUPipeline.save_lora_weights(root / "bare", transformer_lora_layers=layers)
    return root


def test_a_diffusers_lora_folder_gets_a_lora_card_with_its_base_model(diffusers_lora):
    card = create_model_card(diffusers_lora / "with_metadata", repo_id="user/tiny-style")
    metadata = card_metadata(card)
    assert metadata["library_name"] == "diffusers" and metadata["pipeline_tag"] == "text-to-video"
    assert {"lora", "text-to-video", "diffusers", "template:sd-lora"} <= set(metadata["tags"])
    assert "peft" not in metadata["tags"]
    assert metadata["base_model"] == "tester/tiny-univigu" and metadata["base_model_relation"] == "adapter"
    text = str(card)
    assert "r = 4, alpha = 8" in text and "to_q, to_v" in text
    assert 'pipe.load_lora_weights("user/tiny-style", adapter_name="lora")' in text
    assert 'UniViGUPipeline.from_pretrained("tester/tiny-univigu")' in text
    # No metadata in the file: base_model from the argument (which also wins over the metadata).
    bare = card_metadata(create_model_card(diffusers_lora / "bare", base_model="tester/other"))
    assert bare["base_model"] == "tester/other" and "lora" in bare["tags"]
    assert "base_model" not in card_metadata(create_model_card(diffusers_lora / "bare"))
    forced = create_model_card(diffusers_lora / "with_metadata", base_model="tester/other")
    assert card_metadata(forced)["base_model"] == "tester/other"


def test_push_of_a_diffusers_lora_folder_writes_its_card(hub, diffusers_lora, tmp_path):
    run_python(
        f"""
        from univigu_hf.hub import push_to_hub

        push_to_hub({str(diffusers_lora / "bare")!r}, "tester/tiny-style", base_model="tester/tiny-univigu")
        """,
        hub=hub,
        home=tmp_path / "home",
        tmpdir=tmp_path,
    )
    repo = hub.repos["tester/tiny-style"]
    assert {"README.md", "pytorch_lora_weights.safetensors"} <= set(repo.head[2])
    assert repo.head[1] == "Upload UniViGU LoRA (diffusers format)"
    metadata = card_metadata(card_text(repo))
    assert metadata["base_model"] == "tester/tiny-univigu" and {"lora", "text-to-video", "diffusers"} <= set(
        metadata["tags"]
    )
