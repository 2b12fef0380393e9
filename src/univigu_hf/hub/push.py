"""Publishing UniViGU pipelines, models and LoRA adapters on the Hub, with a generated model card.

`push_to_hub(obj, repo_id, ...)` publishes a [`UniViGUPipeline`], a [`UniViGUModel`], a PEFT adapter, or a folder holding
any of them, with its card ([`create_model_card`]), in one commit. Loading back is the ordinary Hub code:
`UniViGUPipeline.from_pretrained("user/name")`, `AutoModel.from_pretrained("user/name")`,
`transformers.pipeline("video-to-text", model="user/name")`. See docs/hub.md.
"""

import json
import os
import re
import tempfile
from pathlib import Path

from huggingface_hub import CommitInfo, CommitOperationAdd, HfApi, ModelCard, ModelCardData, constants
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import filter_repo_objects
from transformers.utils import logging

from .checkpoint import (
    SOURCE_TYPES_MESSAGE,
    Checkpoint,
    describe_folder,
    describe_object,
    is_univigu_model,
    peft_config_of,
)
from .model_card import CARD_NAME, create_model_card, looks_like_repo_id, resolve_base_models
from .training_record import find_training_summary, load_json_argument, training_stages


logger = logging.get_logger(__name__)

DEFAULT_IGNORE_PATTERNS = (
    "checkpoint-*",  # Trainer checkpoints (optimizer state) of a training output folder
    "prepared_data/*",  # the precomputed latents/embeddings cache
    "runs/*",  # TensorBoard logs
    ".cache/*",
    ".git/*",
    "*.bin",  # this project publishes safetensors only: pickles (e.g. training_args.bin) never leave the machine
    "*.pt",
    "*.pth",
    "*.pkl",
    "*.ckpt",
)


class HubPushError(OSError):
    """Publishing to the Hub failed. Nothing on the local disk was changed; the message says what the Hub answered."""


# ------------------------------------------------------------------------------------------------------------------
# Publishing
# ------------------------------------------------------------------------------------------------------------------
def check_can_push(repo_id: str, argument: str = "repo_id") -> None:
    """
    Raises unless a push to `repo_id` can be attempted: a `ValueError` naming `argument` for a malformed repository
    id, a `HubPushError` in offline mode. The training scripts call it before training when `--push_to_hub` is set.
    """
    if not isinstance(repo_id, str) or not re.fullmatch(r"([\w.\-]+/)?[\w.\-]+", repo_id):
        raise ValueError(
            f"{argument} must be 'name' or 'namespace/name' (letters, digits, '-', '_', '.'), got {repo_id!r}"
        )
    if constants.is_offline_mode():
        raise HubPushError(
            f"Cannot push to {repo_id!r}: offline mode is on (HF_HUB_OFFLINE=1). Unset HF_HUB_OFFLINE to publish."
        )


def _check_push_arguments(repo_id, private, commit_message, model_card) -> None:
    if not isinstance(private, bool):
        raise TypeError(f"private must be True or False, got {private!r}")
    if commit_message is not None and not isinstance(commit_message, str):
        raise TypeError(f"commit_message must be a string, got {type(commit_message).__name__}")
    if not isinstance(model_card, (bool, str, ModelCard)):
        raise TypeError(
            f"model_card must be True, False, a ModelCard or a markdown string, got {type(model_card).__name__}"
        )
    check_can_push(repo_id)


def _save_object(obj, folder: str) -> None:
    from diffusers import DiffusionPipeline

    if isinstance(obj, DiffusionPipeline):
        obj.save_pretrained(folder)
    elif peft_config_of(obj) is not None or is_univigu_model(obj):
        obj.save_pretrained(folder)
    else:
        raise TypeError("obj: " + SOURCE_TYPES_MESSAGE.format(type(obj).__name__))


def _upload_files(folder: Path, allow_patterns, ignore_patterns) -> tuple[list[str], list[str]]:
    """The files of `folder` to upload (repo-relative posix paths) and the pickle files left out."""
    every = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    chosen = list(filter_repo_objects(every, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns))
    pickles = [p for p in every if p.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt")) and p not in chosen]
    return chosen, pickles


def _describe_http_error(error: HfHubHTTPError) -> tuple[int | None, str]:
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    message = getattr(error, "server_message", None) or str(error).splitlines()[0]
    return status, message


_HINTS = {
    401: "The Hub refused the token: log in with `hf auth login`, or set HF_TOKEN / pass token= a token with write "
    "access.",
    403: "The token may not write there: check the namespace and that the token has write access to it.",
    404: "The repository or revision does not exist (or is private to another account).",
    413: "A file is too large for this endpoint.",
    429: "Too many requests: wait and push again.",
}


def push_to_hub(
    obj,
    repo_id: str,
    *,
    private: bool = False,
    commit_message: str | None = None,
    card_data: dict | ModelCardData | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    model_card: bool | str | ModelCard = True,
    base_model: str | list[str] | None = None,
    training: dict | str | os.PathLike | None = None,
    metrics: dict | list | str | os.PathLike | None = None,
    example_prompt: str | None = None,
    allow_patterns: list[str] | str | None = None,
    ignore_patterns: list[str] | str | None = None,
    endpoint: str | None = None,
) -> CommitInfo:
    r"""
    Publishes a UniViGU checkpoint with its model card in one commit: creates the repository if needed, then uploads
    the checkpoint files and `README.md`.

    Args:
        obj: a [`UniViGUPipeline`] (or the base stage's `WanPipeline`), a [`UniViGUModel`], a `PeftModel` around one
            (its adapter is pushed), or a folder holding any of these (e.g. a training script's `output_dir`). An
            object is saved into a temporary folder; a folder is uploaded as it is and never modified.
        repo_id (`str`): `"name"` (in the token's namespace) or `"namespace/name"`.
        private (`bool`, defaults to `False`): create the repository private. Has no effect when it already exists.
        commit_message (`str`, *optional*): default `"Upload UniViGU <kind>"`.
        card_data (`dict` or `ModelCardData`, *optional*): card metadata overriding/extending the generated fields.
        token (`str` or `bool`, *optional*): a token with write access; default: `HF_TOKEN` or the `hf auth login`
            one.
        revision (`str`, *optional*): the branch to commit to (default: `main`).
        create_pr (`bool`, defaults to `False`): open a pull request instead of committing to the branch.
        model_card (`bool`, `str` or `ModelCard`, defaults to `True`): `True` writes the card with
            [`create_model_card`] (replacing, in the upload only, a `README.md` in the folder); a `ModelCard` or a
            markdown string is used as is; `False` uploads no card (a folder's own `README.md` goes up unchanged).
        base_model, training, metrics, example_prompt: passed to [`create_model_card`].
        allow_patterns, ignore_patterns (`list[str]` or `str`, *optional*): which files of the folder to upload
            (fnmatch patterns). `ignore_patterns` adds to the defaults, which leave out Trainer checkpoints, the
            prepared-data cache, logs and pickle files (`*.bin`, `*.pt`, `*.pth`, ...; this project publishes
            safetensors only).
        endpoint (`str`, *optional*): the Hub endpoint (default: `HF_ENDPOINT` or https://huggingface.co).

    Returns:
        `huggingface_hub.CommitInfo`: `commit_url`, `oid`, `repo_url.repo_id` (the full repository id).

    Raises:
        `HubPushError`: the Hub refused or failed (the message has the HTTP status, the Hub's explanation and what to
            do); nothing local was changed. Also raised in offline mode (`HF_HUB_OFFLINE=1`).
        `ValueError` / `TypeError`: bad arguments, or a folder that holds no UniViGU checkpoint.
    """
    _check_push_arguments(repo_id, private, commit_message, model_card)
    if isinstance(obj, (str, os.PathLike)):
        if not Path(obj).is_dir():
            raise ValueError(f"obj {os.fspath(obj)!r} is not a folder; " + SOURCE_TYPES_MESSAGE.format("a path"))
        return _push_folder(
            Path(obj), repo_id, private, commit_message, card_data, token, revision, create_pr, model_card,
            base_model, training, metrics, example_prompt, allow_patterns, ignore_patterns, endpoint,
        )  # fmt: skip
    describe_object(obj)  # fail on an unsupported object before saving anything
    training = {} if training is None else training  # an object has no training_summary.json next to it
    with tempfile.TemporaryDirectory(prefix="univigu-push-") as folder:
        _save_object(obj, folder)
        return _push_folder(
            Path(folder), repo_id, private, commit_message, card_data, token, revision, create_pr, model_card,
            base_model, training, metrics, example_prompt, allow_patterns, ignore_patterns, endpoint,
        )  # fmt: skip


def _push_folder(
    folder: Path,
    repo_id,
    private,
    commit_message,
    card_data,
    token,
    revision,
    create_pr,
    model_card,
    base_model,
    training,
    metrics,
    example_prompt,
    allow_patterns,
    ignore_patterns,
    endpoint,
) -> CommitInfo:
    checkpoint = describe_folder(folder)
    ignore = list(DEFAULT_IGNORE_PATTERNS) + _as_pattern_list(ignore_patterns)
    files, pickles = _upload_files(folder, _as_pattern_list(allow_patterns) or None, ignore)
    if pickles:
        logger.warning(f"Not uploading pickle files (safetensors only): {', '.join(pickles)}")
    if not files:
        raise ValueError(f"obj {os.fspath(folder)!r}: no files to upload after allow_patterns/ignore_patterns")

    card_text = None
    if model_card is True:
        card = create_model_card(
            folder,
            repo_id=repo_id,
            base_model=base_model,
            training=training,
            metrics=metrics,
            card_data=card_data,
            example_prompt=example_prompt,
        )
        card_text = str(card)
    elif isinstance(model_card, (str, ModelCard)):
        card_text = str(model_card)
    replaced = {CARD_NAME: card_text.encode("utf-8")} if card_text is not None else {}
    if checkpoint.kind == "adapter" and "adapter_config.json" in files:
        replaced.update(_adapter_config_for_hub(checkpoint, training, base_model))
    operations = [
        CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(folder / path))
        for path in files
        if path not in replaced
    ]
    operations += [CommitOperationAdd(path_in_repo=path, path_or_fileobj=data) for path, data in replaced.items()]

    what = f"UniViGU {checkpoint.kind}" if checkpoint.pipeline_class != "WanPipeline" else "Wan base pipeline"
    what = "UniViGU LoRA (diffusers format)" if checkpoint.kind == "lora" else what
    message = commit_message or f"Upload {what}"
    api = HfApi(endpoint=endpoint, token=token)
    target = f"{api.endpoint}/{repo_id}"
    step = "creating the repository"
    try:
        repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
        step = f"committing {len(operations)} files"
        info = api.create_commit(
            repo_id=repo_url.repo_id,
            operations=operations,
            commit_message=message,
            revision=revision,
            create_pr=create_pr,
        )
    except HfHubHTTPError as error:
        status, server_message = _describe_http_error(error)
        hint = _HINTS.get(status, "The Hub had an error; push again later." if (status or 0) >= 500 else "")
        raise HubPushError(
            f"Pushing the {what} from {os.fspath(folder)!r} to {target} failed while {step}: HTTP {status} "
            f"{server_message}. {hint} Nothing was changed locally.".replace("  ", " ")
        ) from error
    except ValueError as error:  # the Hub rejected the card's metadata (validate-yaml)
        if "metadata" not in str(error):
            raise
        raise HubPushError(
            f"Pushing to {target} failed: the Hub rejected the model card's metadata ({error}). Fix card_data or "
            "model_card. Nothing was changed locally."
        ) from error
    except OSError as error:  # connection refused, DNS, timeouts (httpx errors are not OSError; see below)
        raise HubPushError(
            f"Pushing to {target} failed while {step}: {type(error).__name__}: {error}. Nothing was changed locally."
        ) from error
    except Exception as error:
        if type(error).__module__.split(".")[0] not in ("httpx", "httpx2", "httpcore"):
            raise
        raise HubPushError(
            f"Pushing to {target} failed while {step}: could not reach the Hub ({type(error).__name__}: {error}). "
            "Check the network and HF_ENDPOINT. Nothing was changed locally."
        ) from error
    logger.info(f"Pushed {len(operations)} files to {info.commit_url}")
    return info


def _adapter_config_for_hub(checkpoint: Checkpoint, training, base_model) -> dict[str, bytes]:
    """
    The uploaded `adapter_config.json` names the Hub base model when the local one names a local folder (what a
    training run writes), so that `PeftModel`/`AutoModel` find the base by repo id. The local file is not changed.
    """
    summary = load_json_argument("training", training)
    stages = training_stages(summary if summary is not None else find_training_summary(checkpoint))
    local = checkpoint.adapter_config.get("base_model_name_or_path")
    bases = resolve_base_models(checkpoint, stages, base_model)
    if not bases or looks_like_repo_id(local) or local == bases[0]:
        return {}
    logger.info(f"The uploaded adapter_config.json names base_model_name_or_path={bases[0]!r} (locally: {local!r})")
    config = dict(checkpoint.adapter_config, base_model_name_or_path=bases[0])
    return {"adapter_config.json": (json.dumps(config, indent=2, sort_keys=True) + "\n").encode("utf-8")}


def _as_pattern_list(patterns) -> list[str]:
    if patterns is None:
        return []
    if isinstance(patterns, str):
        return [patterns]
    if isinstance(patterns, (list, tuple)) and all(isinstance(p, str) for p in patterns):
        return list(patterns)
    raise TypeError(f"allow_patterns/ignore_patterns must be a string or a list of strings, got {patterns!r}")
