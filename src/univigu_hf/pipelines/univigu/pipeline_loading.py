"""Building, loading, saving and publishing `UniViGUPipeline`: one folder that diffusers and transformers both load."""

import json
import os
import pickle
import re

import torch
from diffusers import DiffusionPipeline, WanPipeline
from safetensors import SafetensorError

from ...models import UniViGUModel
from ...schedulers import UniFlowScheduler
from ...utils.loading import unreadable_weights_error
from ...utils.saving import atomic_save_pretrained
from ...utils.torch_utils import diffusers_dtype_kwargs, realign_cpu_tensors


TRANSFORMERS_CONFIG_NAME = "config.json"
TRANSFORMERS_INDEX_NAME = "model.safetensors.index.json"
# `save_pretrained(..., push_to_hub=True, **kwargs)`: the keyword arguments that go to `univigu_hf.hub.push_to_hub`.
_PUSH_KWARGS = (
    "repo_id", "commit_message", "private", "token", "create_pr", "revision", "card_data", "metrics", "training",
    "base_model", "example_prompt",
)  # fmt: skip


class UniViGUPipelineLoadingMixin:
    """`from_wan`, `from_pretrained`, `save_pretrained`, `push_to_hub` and `save_config` of [`UniViGUPipeline`]."""

    @classmethod
    def from_wan(
        cls,
        wan_pipeline_or_path: "WanPipeline | str | os.PathLike",
        *,
        text_ffn_dim: int | None = None,
        text_vocab_size: int | None = None,
        max_text_length: int = 256,
        shift: float | None = None,
        torch_dtype: torch.dtype | None = None,
        video_attends_text: bool = True,
        **pipeline_kwargs,
    ) -> DiffusionPipeline:
        r"""
        Builds a unified pipeline from a diffusers Wan2.1 text-to-video pipeline: the same VAE, text encoder and
        tokenizer, the Wan transformer grown into a [`UniViGUModel`] with a fresh text branch (see
        [`UniViGUModel.from_wan`]), and a [`UniFlowScheduler`].

        Args:
            wan_pipeline_or_path (`WanPipeline`, `str` or `os.PathLike`):
                A loaded `WanPipeline` (components are shared, the transformer is copied) or its folder / repo id.
            text_ffn_dim (`int`, *optional*): width of the text FFN experts (`None`: full-size copy).
            text_vocab_size (`int`, *optional*): caption vocabulary; `None` uses `len(tokenizer)`.
            max_text_length (`int`, defaults to 256): default caption length (the official run uses 256).
            shift (`float`, *optional*): flow shift; `None` takes the Wan scheduler's `flow_shift`/`shift` (3.0 if
                it has none).
            torch_dtype (`torch.dtype`, *optional*): dtype to load a Wan pipeline from a path in.
            video_attends_text (`bool`, defaults to `True`): the transformer's `video_attends_text` (`False`: the
                video never attends to the caption, which makes the exact video context cache of `caption` possible).
            **pipeline_kwargs: pipeline config (`default_height`, `default_num_inference_steps`, ...).

        Returns:
            [`UniViGUPipeline`]
        """
        if isinstance(wan_pipeline_or_path, (str, os.PathLike)):
            wan = WanPipeline.from_pretrained(wan_pipeline_or_path, **diffusers_dtype_kwargs(torch_dtype))
        elif isinstance(wan_pipeline_or_path, WanPipeline):
            wan = wan_pipeline_or_path
        else:
            raise TypeError(
                "wan_pipeline_or_path must be a diffusers WanPipeline or the path/repo id of one, got "
                f"{type(wan_pipeline_or_path).__name__}"
            )
        if wan.transformer is None:
            raise ValueError("wan_pipeline_or_path has no transformer (a Wan2.2 low-noise-only pipeline?)")
        vocab = len(wan.tokenizer) if text_vocab_size is None else text_vocab_size
        transformer = UniViGUModel.from_wan(
            wan.transformer,
            text_vocab_size=vocab,
            text_ffn_dim=text_ffn_dim,
            max_text_length=max_text_length,
            pad_token_id=wan.tokenizer.pad_token_id if wan.tokenizer.pad_token_id is not None else 0,
            video_attends_text=video_attends_text,
        )
        if shift is None:
            wan_scheduler = dict(wan.scheduler.config)
            shift = wan_scheduler.get("flow_shift") or wan_scheduler.get("shift") or 3.0
        scheduler = UniFlowScheduler(shift=float(shift), text_vocab_size=vocab)
        return cls(
            vae=wan.vae,
            text_encoder=wan.text_encoder,
            tokenizer=wan.tokenizer,
            transformer=transformer,
            scheduler=scheduler,
            **pipeline_kwargs,
        )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> DiffusionPipeline:
        """
        `DiffusionPipeline.from_pretrained` (local folder or repo id; all its arguments), with CPU weights realigned
        after memory-mapped loading so that a saved pipeline reproduces its outputs bit for bit, and checks that no
        partly random pipeline is returned: a truncated/corrupted weights file, a pickle that is not weights-only, a
        component whose weights miss tensors its config needs, or a tokenizer/scheduler that does not fit the
        transformer's `text_vocab_size` raise a clear error.
        """
        source = os.fspath(pretrained_model_name_or_path)
        if os.path.isdir(source):
            check_pipeline_folder(source, kwargs)
        try:
            pipeline = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        except (SafetensorError, pickle.UnpicklingError) as error:
            raise unreadable_weights_error(source, error) from error
        except OSError as error:  # diffusers' wording for the same unreadable files
            if "Unable to load weights from checkpoint file" in str(error):
                raise unreadable_weights_error(source, error) from error
            raise
        for name, component in pipeline.components.items():
            if isinstance(component, torch.nn.Module):
                if not isinstance(component, UniViGUModel):  # UniViGUModel.from_pretrained checks its own weights
                    _check_component_weights(name, component)
                realign_cpu_tensors(component)
        return pipeline

    def save_pretrained(self, save_directory: str | os.PathLike, *args, push_to_hub: bool = False, **kwargs):
        """
        `DiffusionPipeline.save_pretrained` (all its arguments), made atomic: the pipeline is written into a staging
        folder and then moved into place (see [`univigu_hf.utils.saving`]), so an interrupted save leaves the previous
        complete pipeline or none; other files of the folder are kept. With `push_to_hub=True` the saved folder is then
        published with its UniViGU model card by [`univigu_hf.hub.push_to_hub`]: `repo_id` (default: the folder
        name), `commit_message`, `private`, `token`, `create_pr`, `revision`, `card_data`, `metrics`, `training`,
        `base_model` and `example_prompt` are taken from the keyword arguments. The card is uploaded, not written into
        `save_directory`.
        """
        hub_kwargs = {name: kwargs.pop(name) for name in _PUSH_KWARGS if name in kwargs}
        if push_to_hub:
            from ...hub import check_can_push

            repo_id = hub_kwargs.pop("repo_id", None) or os.path.basename(os.path.normpath(save_directory))
            check_can_push(repo_id)  # before saving anything
        atomic_save_pretrained(super().save_pretrained, save_directory, *args, **kwargs)
        if push_to_hub:
            from ...hub import push_to_hub as push

            hub_kwargs["private"] = bool(hub_kwargs.get("private"))
            return push(save_directory, repo_id, **hub_kwargs)
        return None

    def push_to_hub(
        self,
        repo_id: str,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        create_pr: bool = False,
        safe_serialization: bool = True,
        *,
        card_data: dict | None = None,
        **kwargs,
    ):
        r"""
        Publishes the pipeline to the Hub in one commit, with a UniViGU model card as its `README.md` (architecture,
        defaults, usage for diffusers and transformers, training details and evaluation results when given,
        limitations, citation). Same arguments as diffusers' `push_to_hub`, plus those of
        [`univigu_hf.hub.push_to_hub`] (`card_data`, `metrics`, `training`, `base_model`, `revision`, ...).

        Returns:
            `huggingface_hub.CommitInfo` (a `str`: the commit URL; `.repo_url.repo_id` is the full repository id).
        """
        if safe_serialization is not True:
            raise ValueError("safe_serialization must be True: univigu_hf publishes safetensors only")
        from ...hub import push_to_hub as push

        return push(
            self,
            repo_id,
            private=bool(private),
            commit_message=commit_message,
            token=token,
            create_pr=create_pr,
            card_data=card_data,
            **kwargs,
        )

    def save_config(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs):
        """
        Writes `model_index.json` and, so that transformers can load the same folder, a root `config.json` (the
        transformer's) and a root `model.safetensors.index.json` pointing into `transformer/` (no duplicated
        weights; one index per saved `variant`, named as transformers looks for it). `save_pretrained` calls this
        after saving the components.
        """
        super().save_config(save_directory, push_to_hub=push_to_hub, **kwargs)
        transformer_dir = os.path.join(save_directory, "transformer")
        if not os.path.isfile(os.path.join(transformer_dir, TRANSFORMERS_CONFIG_NAME)):
            return  # Called before the components were written (diffusers does this when pushing).
        with open(os.path.join(transformer_dir, TRANSFORMERS_CONFIG_NAME), encoding="utf-8") as handle:
            config = json.load(handle)
        with open(os.path.join(save_directory, TRANSFORMERS_CONFIG_NAME), "w", encoding="utf-8") as handle:
            json.dump(config, handle, indent=2, sort_keys=True)
        for variant, index in _transformer_indexes(transformer_dir).items():
            name = TRANSFORMERS_INDEX_NAME if variant is None else f"model.safetensors.index.{variant}.json"
            with open(os.path.join(save_directory, name), "w", encoding="utf-8") as handle:
                json.dump(index, handle, indent=2, sort_keys=True)


# Weight files as diffusers and transformers name them: `{diffusion_pytorch_model|model}[.variant].{safetensors|bin}`,
# or a shard index `...{safetensors|bin}.index[.variant].json`.
_WEIGHTS_FILE = re.compile(
    r"(?:diffusion_pytorch_model|model|pytorch_model)(?:\.([^.]+))?\.(?:safetensors|bin)"
    r"|(?:diffusion_pytorch_model|model|pytorch_model)\.(?:safetensors|bin)\.index(?:\.([^.]+))?\.json"
)
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "spiece.model", "vocab.json", "tokenizer.model")


def check_pipeline_folder(folder: str, kwargs: dict) -> None:
    """
    Names what a local pipeline folder lacks before diffusers loads it (diffusers' own errors name a fallback file,
    `diffusion_pytorch_model.bin`, or a missing tokenizer backend instead): a component folder that `model_index.json`
    lists, the tokenizer's files, or any weights file; weights saved only as a variant (`model.fp16.safetensors`)
    loaded without `variant=`.

    Args:
        folder (`str`): the pipeline folder.
        kwargs (`dict`): the `from_pretrained` arguments (components passed in are not checked; `variant`).

    Raises:
        `ValueError` naming the folder, the component and the file or argument needed.
    """
    index_path = os.path.join(folder, "model_index.json")
    if not os.path.isfile(index_path):
        return  # diffusers names the missing model_index.json
    with open(index_path, encoding="utf-8") as handle:
        index = json.load(handle)
    variant = kwargs.get("variant")
    for name, spec in index.items():
        if name.startswith("_") or name in kwargs or not isinstance(spec, list) or None in spec:
            continue
        component_dir = os.path.join(folder, name)
        if not os.path.isdir(component_dir):
            raise ValueError(
                f"The pipeline folder {folder!r} has no {name}/ folder, which its model_index.json lists ({spec[1]}): "
                f"the download or copy is incomplete; re-download or re-save it, or pass {name}=... to from_pretrained"
            )
        files = os.listdir(component_dir)
        if name == "tokenizer":
            if not any(file in files for file in _TOKENIZER_FILES):
                raise ValueError(
                    f"The tokenizer folder {component_dir!r} has none of the tokenizer files {_TOKENIZER_FILES}: the "
                    "download or copy is incomplete; re-download or re-save the pipeline"
                )
            continue
        if "config.json" not in files or name == "scheduler":
            continue  # a scheduler has no weights; diffusers names a missing config.json
        variants = set()
        for file in files:
            match = _WEIGHTS_FILE.fullmatch(file)
            if match:
                variants.add(match.group(1) or match.group(2))
        if not variants:
            raise ValueError(
                f"The {name} folder {component_dir!r} has a config.json but no weights file (e.g. "
                "diffusion_pytorch_model.safetensors or model.safetensors): the download or copy is incomplete; "
                "re-download or re-save the pipeline"
            )
        if variant not in variants and (variant is None or None not in variants):
            # (A requested variant missing beside plain weights is diffusers' to resolve: it falls back to them.)
            saved = sorted(v for v in variants if v is not None)
            raise ValueError(
                f"The {name} weights in {component_dir!r} are saved only as variant(s) {saved}, not "
                f"{'the plain file' if variant is None else repr(variant)}: pass variant={saved[0]!r} to "
                "from_pretrained"
            )


def _transformer_indexes(transformer_dir: str) -> dict[str | None, dict]:
    """
    A transformers weight index for each variant saved in `transformer_dir`, its paths relative to the pipeline
    folder: the transformer's own index when sharded (`model.safetensors.index[.variant].json`), else one built from
    its single `model[.variant].safetensors`.
    """
    from safetensors import safe_open

    indexes = {}
    for name in sorted(os.listdir(transformer_dir)):
        sharded = re.fullmatch(r"model\.safetensors\.index(?:\.([^.]+))?\.json", name)
        single = re.fullmatch(r"model(?:\.([^.]+))?\.safetensors", name)
        path = os.path.join(transformer_dir, name)
        if sharded:
            with open(path, encoding="utf-8") as handle:
                index = json.load(handle)
            index["weight_map"] = {k: f"transformer/{v}" for k, v in index["weight_map"].items()}
            indexes[sharded.group(1)] = index
        elif single and single.group(1) not in indexes:
            with safe_open(path, framework="pt") as handle:
                keys = list(handle.keys())
            indexes[single.group(1)] = {
                "metadata": {"total_size": os.path.getsize(path)},
                "weight_map": dict.fromkeys(keys, f"transformer/{name}"),
            }
    return indexes


def _check_component_weights(name: str, component: torch.nn.Module) -> None:
    """
    Raises if a loaded component lacks tensors its config needs (transformers fills those with random values and
    only warns). Compares the component's parameters with the tensor names in its local safetensors files; tied
    parameters count once.
    """
    folder = getattr(component, "name_or_path", None) or getattr(
        getattr(component, "config", None), "_name_or_path", None
    )
    if not isinstance(folder, str) or not os.path.isdir(folder):
        return
    files = [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".safetensors")]
    if not files:
        return
    from safetensors import safe_open

    stored = set()
    for path in files:
        with safe_open(path, framework="pt") as handle:
            stored.update(handle.keys())
    groups: dict[tuple, list[str]] = {}
    for key, tensor in component.state_dict(keep_vars=True).items():
        ident = (tensor.device, tensor.data_ptr()) if tensor.numel() and tensor.device.type != "meta" else (key,)
        groups.setdefault(ident, []).append(key)
    missing = sorted(keys[0] for keys in groups.values() if not any(key in stored for key in keys))
    if missing:
        raise ValueError(
            f"The {name} weights in {folder!r} do not match its config: {len(missing)} tensors the config needs are "
            f"missing from the checkpoint ({missing[:4]}{' ...' if len(missing) > 4 else ''}). The config and the "
            "weights come from different models, or the download is incomplete: re-save or re-download the folder."
        )
