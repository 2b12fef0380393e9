"""Tests for `univigu_hf.training.data`: loading video-text datasets and preparing (caching) latents/embeddings."""

import csv
import json
import logging
import os

import datasets
import numpy as np
import pytest
import torch

from univigu_hf import UniViGUPipeline
from univigu_hf.testing import build_tiny_pipelines, build_tiny_video_folder
from univigu_hf.training import video_reading
from univigu_hf.training.data import PREPARED_COLUMNS, count_truncated, prepare_dataset
from univigu_hf.training.dataset_loading import STAGES, load_video_dataset
from univigu_hf.training.prepared_cache import pipeline_fingerprint


TINY = {"height": 16, "width": 16, "num_frames": 5}


@pytest.fixture(scope="module")
def pipe():
    return build_tiny_pipelines()[0]


@pytest.fixture(autouse=True)
def isolated_datasets_cache(tmp_path, monkeypatch):
    """Keeps `datasets`' own cache (json/csv builds, map cache files) inside the test's folder."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_datasets_cache"))


@pytest.fixture
def folder(tmp_path):
    return build_tiny_video_folder(tmp_path / "videos", num_videos=3)


def read_rows(folder):
    with open(os.path.join(folder, "metadata.jsonl"), encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def count_vae_calls(monkeypatch, pipe):
    calls = []
    original = pipe.encode_video

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(pipe, "encode_video", counting)
    return calls


def token_ids(pipe, text, length):
    return pipe.tokenizer(text, truncation=True, max_length=length, add_special_tokens=True)["input_ids"]


def cache_entries(cache_dir):
    return sorted(os.listdir(cache_dir)) if os.path.isdir(cache_dir) else []


# ----- loading --------------------------------------------------------------------------------------------------------
def test_load_folder(folder):
    dataset, base_dir = load_video_dataset(folder)
    assert isinstance(dataset, datasets.Dataset)
    assert len(dataset) == 3
    assert set(dataset.column_names) == {"file_name", "prompt", "caption"}
    assert base_dir == os.path.abspath(folder)
    assert os.path.isfile(os.path.join(base_dir, dataset[0]["file_name"]))


def test_load_jsonl_file_path(folder):
    dataset, base_dir = load_video_dataset(os.path.join(folder, "metadata.jsonl"), stage="refine")
    assert len(dataset) == 3
    assert base_dir == os.path.abspath(folder)


def test_load_csv_folder(folder, tmp_path):
    csv_folder = tmp_path / "csv_videos"
    csv_folder.mkdir()
    rows = read_rows(folder)
    for row in rows:
        os.symlink(os.path.join(folder, row["file_name"]), csv_folder / row["file_name"])
    with open(csv_folder / "metadata.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file_name", "prompt", "caption"])
        writer.writeheader()
        writer.writerows(rows)
    dataset, base_dir = load_video_dataset(csv_folder, stage="refine")
    assert base_dir == str(csv_folder)
    assert dataset["prompt"] == [row["prompt"] for row in rows]
    assert dataset["caption"] == [row["caption"] for row in rows]


def test_column_overrides(folder, pipe):
    rows = [{"video": r["file_name"], "short": r["prompt"], "long": r["caption"]} for r in read_rows(folder)]
    path = os.path.join(folder, "renamed.jsonl")
    write_jsonl(path, rows)
    columns = dict(video_column="video", prompt_column="short", caption_column="long")
    dataset, base_dir = load_video_dataset(path, stage="refine", **columns)
    prepared = prepare_dataset(
        pipe, dataset, stage="refine", base_dir=base_dir, max_text_length=32, batch_size=2, **columns, **TINY
    )
    assert prepared[1]["text_ids"] == token_ids(pipe, rows[1]["long"], 32)
    assert prepared[1]["prompt_ids"] == token_ids(pipe, rows[1]["short"], 32)
    assert set(prepared.column_names) == {"video", "short", "long", *PREPARED_COLUMNS}


@pytest.mark.parametrize(
    "stage, missing, flag",
    [
        ("recall", "prompt", "--prompt_column"),
        ("recall", "file_name", "--video_column"),
        ("refine", "caption", "--caption_column"),
    ],
)
def test_missing_column_names_it_and_the_override(folder, stage, missing, flag):
    rows = [{k: v for k, v in row.items() if k != missing} for row in read_rows(folder)]
    path = os.path.join(folder, "partial.jsonl")
    write_jsonl(path, rows)
    with pytest.raises(ValueError) as error:
        load_video_dataset(path, stage=stage)
    message = str(error.value)
    assert repr(missing) in message and flag in message
    assert "Available columns" in message and all(repr(c) in message for c in rows[0])


def test_recall_does_not_need_captions(folder):
    rows = [{k: v for k, v in row.items() if k != "caption"} for row in read_rows(folder)]
    path = os.path.join(folder, "no_caption.jsonl")
    write_jsonl(path, rows)
    dataset, _ = load_video_dataset(path, stage="recall")
    assert dataset.column_names == ["file_name", "prompt"]


def test_empty_dataset(tmp_path, pipe):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metadata.jsonl").write_text("")
    with pytest.raises(ValueError, match="empty"):
        load_video_dataset(tmp_path / "empty")
    (tmp_path / "empty.csv").write_text("file_name,prompt,caption\n")
    with pytest.raises(ValueError, match="empty"):
        load_video_dataset(tmp_path / "empty.csv")
    with pytest.raises(ValueError, match="empty"):
        prepare_dataset(pipe, datasets.Dataset.from_dict({"file_name": [], "prompt": []}))


def test_unknown_stage(folder, pipe):
    for call in (
        lambda: load_video_dataset(folder, stage="pretrain"),
        lambda: prepare_dataset(pipe, datasets.Dataset.from_dict({"file_name": ["a"], "prompt": ["b"]}), stage="x"),
    ):
        with pytest.raises(ValueError, match="stage must be one of") as error:
            call()
        assert all(stage in str(error.value) for stage in STAGES)


def test_missing_local_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_video_dataset(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError):
        load_video_dataset("does/not/exist.jsonl")


# ----- preparation ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recall_prepared(pipe, tmp_path_factory):
    """Prepared once for the read-only tests (an in-memory dataset: no `datasets` cache files)."""
    folder = build_tiny_video_folder(tmp_path_factory.mktemp("recall") / "videos", num_videos=3)
    dataset = datasets.Dataset.from_list(read_rows(folder))
    return prepare_dataset(pipe, dataset, base_dir=folder, batch_size=2, device="cpu", **TINY), folder


def test_recall_columns_and_shapes(recall_prepared, pipe):
    prepared, folder = recall_prepared
    rows = read_rows(folder)
    assert prepared.column_names == ["file_name", "prompt", "caption", *PREPARED_COLUMNS]
    assert prepared.features["video_latents"] == datasets.Array4D(shape=(16, 2, 2, 2), dtype="float32")
    assert prepared.features["prompt_embeds"] == datasets.Array2D(shape=(None, 32), dtype="float32")
    assert prepared.format["type"] is None
    assert pipe.vae.device.type == "cpu" and pipe.text_encoder.device.type == "cpu"  # moved back after `device=`
    length = pipe.transformer.config.max_text_length
    for index, row in enumerate(rows):
        example = prepared[index]
        assert np.asarray(example["video_latents"], dtype=np.float32).shape == (16, 2, 2, 2)
        assert example["text_ids"] == token_ids(pipe, row["prompt"], length)  # recall: the prompt is the target
        assert example["prompt_ids"] == example["text_ids"]
        assert example["text_truncated"] is False
    assert count_truncated(prepared) == 0


def test_prompt_embeds_are_trimmed_encode_prompt(recall_prepared, pipe):
    prepared, folder = recall_prepared
    prompts = [row["prompt"] for row in read_rows(folder)]
    full, _ = pipe.encode_prompt(prompt=prompts, do_classifier_free_guidance=False, max_sequence_length=512)
    assert full.shape[1] == 512
    for index, prompt in enumerate(prompts):
        n_tokens = len(pipe.tokenizer(prompt)["input_ids"])
        stored = torch.tensor(prepared[index]["prompt_embeds"])
        assert stored.shape == (n_tokens, 32)
        torch.testing.assert_close(stored, full[index, :n_tokens])
        assert torch.count_nonzero(full[index, n_tokens:]) == 0  # padding back with zeros is exact
        padded = torch.cat([stored, stored.new_zeros(512 - n_tokens, 32)])
        torch.testing.assert_close(padded, full[index])


def test_latents_equal_pipeline_encoding(recall_prepared, pipe):
    prepared, folder = recall_prepared
    path = os.path.join(folder, read_rows(folder)[2]["file_name"])
    expected = pipe.encode_video(pipe.preprocess_video(path, **TINY))[0]
    torch.testing.assert_close(torch.tensor(prepared[2]["video_latents"]), expected, rtol=1e-5, atol=1e-5)


def test_refine_targets_the_caption(folder, pipe):
    dataset, base_dir = load_video_dataset(folder, stage="refine")
    prepared = prepare_dataset(pipe, dataset, stage="refine", base_dir=base_dir, max_text_length=32, **TINY)
    for index, row in enumerate(read_rows(folder)):
        assert prepared[index]["text_ids"] == token_ids(pipe, row["caption"], 32)
        assert prepared[index]["prompt_ids"] == token_ids(pipe, row["prompt"], 32)  # always the prompt
        assert len(prepared[index]["text_ids"]) > len(prepared[index]["prompt_ids"])  # not padded
    assert count_truncated(prepared) == 0


def test_default_num_frames_and_absolute_paths(folder, pipe):
    rows = read_rows(folder)[:2]
    dataset = datasets.Dataset.from_dict(
        {"file_name": [os.path.join(folder, r["file_name"]) for r in rows], "prompt": [r["prompt"] for r in rows]}
    )
    prepared = prepare_dataset(pipe, dataset)  # no base_dir: absolute paths; sizes from the pipeline config
    assert np.asarray(prepared[0]["video_latents"]).shape == (16, 2, 2, 2)


def test_embedded_video_bytes(folder, pipe):
    row = read_rows(folder)[0]
    with open(os.path.join(folder, row["file_name"]), "rb") as handle:
        data = handle.read()
    dataset = datasets.Dataset.from_dict({"video": [{"bytes": data, "path": "clip.mp4"}], "prompt": [row["prompt"]]})
    dataset = dataset.cast_column("video", datasets.Video(decode=False))
    prepared = prepare_dataset(pipe, dataset, video_column="video", **TINY)
    expected = pipe.encode_video(pipe.preprocess_video(os.path.join(folder, row["file_name"]), **TINY))[0]
    torch.testing.assert_close(torch.tensor(prepared[0]["video_latents"]), expected, rtol=1e-5, atol=1e-5)


def test_truncation_warns_once_with_the_count(folder, pipe, caplog):
    dataset, base_dir = load_video_dataset(folder, stage="refine")
    length = pipe.transformer.config.max_text_length  # 12 tokens; every caption has 14
    with caplog.at_level(logging.WARNING, logger="univigu_hf.training.data"):
        prepared = prepare_dataset(pipe, dataset, stage="refine", base_dir=base_dir, **TINY)
    warnings = [r for r in caplog.records if r.name == "univigu_hf.training.data" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "3 of 3 examples" in warnings[0].getMessage() and f"max_text_length={length}" in warnings[0].getMessage()
    assert prepared["text_truncated"] == [True] * 3
    assert count_truncated(prepared) == 3
    for index, row in enumerate(read_rows(folder)):
        ids = prepared[index]["text_ids"]
        assert len(ids) == length and ids[-1] == pipe.tokenizer.eos_token_id
        assert ids == token_ids(pipe, row["caption"], length)
    with pytest.raises(ValueError, match="text_truncated"):
        count_truncated(dataset)


# ----- bad videos -----------------------------------------------------------------------------------------------------
def test_unreadable_video_names_file_and_row(folder, pipe):
    name = read_rows(folder)[2]["file_name"]
    with open(os.path.join(folder, name), "wb") as handle:
        handle.write(b"\x00\x01 definitely not an mp4 " * 50)
    dataset, base_dir = load_video_dataset(folder)
    with pytest.raises(ValueError, match="could not be read as a video") as error:
        prepare_dataset(pipe, dataset, base_dir=base_dir, batch_size=2, **TINY)
    assert "row 2" in str(error.value) and name in str(error.value)
    assert error.value.__cause__ is None and error.value.__suppress_context__


def test_threaded_video_readers_keep_the_rows_in_order(tmp_path, pipe, monkeypatch):
    folder = build_tiny_video_folder(tmp_path / "videos", num_videos=5)
    dataset, base_dir = load_video_dataset(folder)
    prepared = {}
    for readers in (1, 4):
        monkeypatch.setattr(video_reading, "_VIDEO_READERS", readers)
        result = prepare_dataset(
            pipe, dataset, base_dir=base_dir, batch_size=5, cache_dir=tmp_path / f"readers_{readers}", **TINY
        )
        prepared[readers] = np.asarray(result["video_latents"])
    np.testing.assert_array_equal(prepared[1], prepared[4])
    assert len({row.tobytes() for row in prepared[4]}) == 5  # five different clips, so order is checked


def test_missing_video_names_file_and_row(folder, pipe):
    name = read_rows(folder)[1]["file_name"]
    os.remove(os.path.join(folder, name))
    dataset, base_dir = load_video_dataset(folder)
    with pytest.raises(ValueError, match="not found") as error:
        prepare_dataset(pipe, dataset, base_dir=base_dir, **TINY)
    assert "row 1" in str(error.value) and name in str(error.value)


# ----- caching --------------------------------------------------------------------------------------------------------
def test_cache_hit_skips_the_vae_and_key_changes(folder, pipe, tmp_path, monkeypatch):
    cache_dir = tmp_path / "prepared"
    dataset, base_dir = load_video_dataset(folder, stage="refine")
    calls = count_vae_calls(monkeypatch, pipe)
    kwargs = dict(stage="refine", base_dir=base_dir, cache_dir=cache_dir, max_text_length=32, **TINY)

    first = prepare_dataset(pipe, dataset, **kwargs)
    assert len(calls) == 1  # 3 clips, batch_size 4: one VAE call
    entries = cache_entries(cache_dir)
    assert len(entries) == 1
    assert os.path.isfile(cache_dir / entries[0] / "univigu_prepare.json")

    second = prepare_dataset(pipe, dataset, **kwargs)
    assert len(calls) == 1  # loaded from disk: no VAE call
    assert cache_entries(cache_dir) == entries
    for column in ("video_latents", "prompt_embeds", "prompt_ids", "text_ids", "text_truncated"):
        assert first[column] == second[column]

    prepare_dataset(pipe, dataset, **{**kwargs, "max_text_length": 16})
    prepare_dataset(pipe, dataset, **{**kwargs, "stage": "recall"})  # a new key, but the videos come from the entry
    assert len(calls) == 2
    entries = cache_entries(cache_dir)
    assert len(entries) == 3 and not any(entry.startswith(".") for entry in entries)  # no temporary dirs left


@pytest.mark.parametrize("first_stage", ["recall", "refine"])
def test_a_stage_reuses_the_video_latents_of_the_other_stage(folder, pipe, tmp_path, monkeypatch, first_stage):
    second_stage = "refine" if first_stage == "recall" else "recall"
    dataset, base_dir = load_video_dataset(folder, stage="refine")
    kwargs = dict(base_dir=base_dir, max_text_length=32, **TINY)
    expected = prepare_dataset(pipe, dataset, stage=second_stage, **kwargs)  # no cache: computed from scratch

    cache_dir = tmp_path / "prepared"
    calls = count_vae_calls(monkeypatch, pipe)
    prepare_dataset(pipe, dataset, stage=first_stage, cache_dir=cache_dir, **kwargs)
    assert len(calls) == 1
    reused = prepare_dataset(pipe, dataset, stage=second_stage, cache_dir=cache_dir, **kwargs)
    assert len(calls) == 1  # no VAE call for the second stage
    assert len(cache_entries(cache_dir)) == 2
    for column in ("video_latents", "prompt_embeds", "prompt_ids", "text_ids", "text_truncated"):
        assert reused[column] == expected[column], column
    target = "caption" if second_stage == "refine" else "prompt"
    assert reused["text_ids"][0] == token_ids(pipe, read_rows(folder)[0][target], 32)

    other_size = prepare_dataset(pipe, dataset, stage=second_stage, cache_dir=cache_dir, **{**kwargs, "height": 32})
    assert len(calls) == 2 and len(other_size) == len(dataset)  # a different video size is not reused


def test_interrupted_preparation_leaves_no_cache_entry(folder, pipe, tmp_path, monkeypatch):
    cache_dir = tmp_path / "prepared"
    dataset, base_dir = load_video_dataset(folder)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipe, "encode_video", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(pipe, dataset, base_dir=base_dir, cache_dir=cache_dir, **TINY)
    assert cache_entries(cache_dir) == []
    monkeypatch.undo()
    calls = count_vae_calls(monkeypatch, pipe)
    prepare_dataset(pipe, dataset, base_dir=base_dir, cache_dir=cache_dir, **TINY)
    assert len(calls) == 1 and len(cache_entries(cache_dir)) == 1


def test_changed_weights_or_video_change_the_key(folder, tmp_path, monkeypatch):
    pipe = build_tiny_pipelines()[0]  # a private copy: its weights are edited
    cache_dir = tmp_path / "prepared"
    dataset, base_dir = load_video_dataset(folder)
    kwargs = dict(base_dir=base_dir, cache_dir=cache_dir, **TINY)
    fingerprint = pipeline_fingerprint(pipe)
    assert pipeline_fingerprint(build_tiny_pipelines()[0]) == fingerprint  # deterministic
    prepare_dataset(pipe, dataset, **kwargs)
    with torch.no_grad():
        pipe.text_encoder.shared.weight.mul_(1.5)
    assert pipeline_fingerprint(pipe) != fingerprint
    calls = count_vae_calls(monkeypatch, pipe)
    prepare_dataset(pipe, dataset, **kwargs)
    assert len(calls) == 1 and len(cache_entries(cache_dir)) == 2
    clip = os.path.join(folder, read_rows(folder)[0]["file_name"])
    os.utime(clip, ns=(1, 1))  # a re-encoded / replaced clip
    prepare_dataset(pipe, dataset, **kwargs)
    assert len(calls) == 2 and len(cache_entries(cache_dir)) == 3


def test_fingerprint_ignores_the_tokenizers_call_state_but_not_its_vocabulary(tmp_path):
    pipe = build_tiny_pipelines()[0]
    fingerprint = pipeline_fingerprint(pipe)
    pipe.encode_prompt(["a red square"], do_classifier_free_guidance=False, max_sequence_length=16)
    pipe.save_pretrained(tmp_path / "saved")  # the tokenizer is saved with the padding/truncation of its last call
    reloaded = UniViGUPipeline.from_pretrained(tmp_path / "saved")
    assert pipeline_fingerprint(pipe) == fingerprint == pipeline_fingerprint(reloaded)
    reloaded.tokenizer.add_tokens(["hexagon"])
    assert pipeline_fingerprint(reloaded) != fingerprint


def test_without_cache_dir_uses_the_datasets_map_cache(folder, pipe, monkeypatch):
    dataset, base_dir = load_video_dataset(folder)
    calls = count_vae_calls(monkeypatch, pipe)
    first = prepare_dataset(pipe, dataset, base_dir=base_dir, **TINY)
    second = prepare_dataset(pipe, dataset, base_dir=base_dir, **TINY)
    assert len(calls) == 1  # the file-backed dataset's map cache file was reused
    assert first["video_latents"] == second["video_latents"]
