"""`UniViGUPreTrainedModel`: the transformers contract of the Uni-ViGU models (config class, strict loading, atomic
saving, fp32-kept modules, dtype and weight initialisation)."""

import functools
import math
import os
import pickle
import re

import torch
import torch.nn as nn
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed, WanTransformerBlock
from safetensors import SafetensorError
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import logging

from ..utils.loading import config_summary, loading_problems, unreadable_weights_error
from ..utils.saving import atomic_save_pretrained
from ..utils.torch_utils import realign_cpu_tensors
from .configuration_univigu import UniViGUConfig


logger = logging.get_logger(__name__)


class UniViGUPreTrainedModel(PreTrainedModel):
    config_class = UniViGUConfig
    config: UniViGUConfig
    base_model_prefix = ""
    main_input_name = "video_latents"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["UniViGUTransformerBlock"]
    # Wan's fp32 modules (diffusers' `_keep_in_fp32_modules`) that hold weights, plus the text head's norm; `_strict`
    # keeps them fp32 in bf16 as well as fp16. (Wan's parameterless `norm1`/`norm3` compute in fp32 by class.)
    _keep_in_fp32_modules = []
    _keep_in_fp32_modules_strict = [
        "time_embedder",
        "scale_shift_table",
        "norm2",
        "text_scale_shift_table",
        "text_norm_out",
    ]

    @classmethod
    def keeps_fp32(cls, name: str) -> bool:
        """Whether the parameter `name` stays float32 in a half-precision model (transformers' own name matching)."""
        return _module_pattern(tuple(cls._keep_in_fp32_modules_strict)).search(name) is not None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """
        `PreTrainedModel.from_pretrained`, plus [`realign_cpu_tensors`] so outputs match the saved model's exactly,
        and strict checks: a truncated or corrupted weights file, weights that do not match `config.json` (missing,
        unexpected or differently shaped tensors) and a pickled `.bin` that is not weights-only raise a clear error
        instead of returning a partly random model. `ignore_mismatched_sizes=True` re-initialises differently shaped
        tensors as in transformers. With `output_loading_info=True` the call returns `(model, loading_info)` as in
        transformers, and missing or unexpected tensors are reported there (and logged) rather than raised: the caller
        asked to inspect them. So does `from_pretrained(None, config=config, state_dict=state_dict)`, where the caller
        supplies the weights (the missing ones are initialised by `_init_weights`). Differently shaped tensors still
        raise unless `ignore_mismatched_sizes=True`.
        """
        output_loading_info = kwargs.pop("output_loading_info", False)
        ignore_mismatched_sizes = kwargs.pop("ignore_mismatched_sizes", False)
        source = os.fspath(pretrained_model_name_or_path) if pretrained_model_name_or_path is not None else None
        if kwargs.get("subfolder") and source is not None:
            source = os.path.join(source, kwargs["subfolder"])
        try:
            model, info = super().from_pretrained(
                pretrained_model_name_or_path,
                *args,
                output_loading_info=True,
                ignore_mismatched_sizes=True,
                **kwargs,
            )
        except (SafetensorError, pickle.UnpicklingError) as error:
            raise unreadable_weights_error(source, error) from error
        problems = loading_problems(info, ignore_mismatched_sizes)
        caller_checks = output_loading_info or (source is None and kwargs.get("state_dict") is not None)
        if caller_checks and not loading_problems({"mismatched_keys": info.get("mismatched_keys")}, False):
            # The caller asked for the report to inspect it, or passed the weights in memory, as in transformers:
            # missing and unexpected tensors are reported (missing ones initialised) with a warning, not raised.
            if problems:
                logger.warning("Loading %s from %r: %s.", cls.__name__, source, "; ".join(problems))
            problems = []
        if problems:
            raise ValueError(
                f"The weights in {source!r} do not match its config.json ({cls.__name__}: {config_summary(model)}): "
                + "; ".join(problems)
                + ". The config and the weights come from different models, or the download is incomplete: re-save "
                "or re-download the folder (a Wan checkpoint loads with UniViGUModel.from_wan; "
                "ignore_mismatched_sizes=True re-initialises differently shaped tensors on purpose)."
            )
        model = realign_cpu_tensors(model)
        return (model, info) if output_loading_info else model

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        is_main_process: bool = True,
        state_dict: dict | None = None,
        push_to_hub: bool = False,
        max_shard_size: int | str = "50GB",
        variant: str | None = None,
        token: str | bool | None = None,
        save_peft_format: bool = True,
        **kwargs,
    ):
        """
        `PreTrainedModel.save_pretrained` (same files and arguments, `push_to_hub` included), made atomic: the folder
        is written into a staging folder and then moved into place (see [`univigu_hf.utils.saving`]), so an
        interrupted save leaves the previous complete save or none. Ranks that write nothing in distributed saves
        call it directly. The arguments are named as in transformers so that callers that read the signature
        (diffusers' `DiffusionPipeline.save_pretrained` passes `variant` and `max_shard_size` only to components that
        declare them) pass them on.
        """
        kwargs.update(
            is_main_process=is_main_process,
            state_dict=state_dict,
            push_to_hub=push_to_hub,
            max_shard_size=max_shard_size,
            variant=variant,
            token=token,
            save_peft_format=save_peft_format,
        )
        should_save = getattr(self, "should_save_on_this_rank", lambda main: main)(is_main_process)
        if not should_save or kwargs.get("distributed_checkpoint"):
            return super().save_pretrained(save_directory, **kwargs)
        return atomic_save_pretrained(super().save_pretrained, save_directory, **kwargs)

    @classmethod
    def _from_config(cls, config, **kwargs):
        """
        `PreTrainedModel._from_config` (behind `AutoModel.from_config(config, dtype=...)`), with the
        `_keep_in_fp32_modules_strict` in float32 as `from_pretrained(..., dtype=...)` keeps them: the same dtypes either way.
        """
        model = super()._from_config(config, **kwargs)
        for name, parameter in model.named_parameters():
            if parameter.is_floating_point() and parameter.dtype != torch.float32 and cls.keeps_fp32(name):
                parameter.data = parameter.data.float()
        return model

    @property
    def dtype(self) -> torch.dtype:
        """`torch.dtype`: the compute dtype, i.e. that of the weights outside the fp32-kept modules."""
        for name, parameter in self.named_parameters():
            if parameter.is_floating_point() and not self.keeps_fp32(name):
                return parameter.dtype
        return super().dtype

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        # Same random init as diffusers' Wan (PyTorch defaults) and the official text branch. `init.*` skips tensors
        # that were loaded from a checkpoint.
        dim = self.config.hidden_size
        if isinstance(module, (nn.Linear, nn.Conv3d)):
            if module is getattr(self, "text_proj_out", None):
                init.zeros_(module.weight)
                init.zeros_(module.bias)
                return
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                fan_in = module.weight[0].numel()
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=1.0)
        elif isinstance(module, (nn.LayerNorm, nn.RMSNorm)):
            if module.weight is not None:
                init.ones_(module.weight)
            if getattr(module, "bias", None) is not None:
                init.zeros_(module.bias)
        elif isinstance(module, WanRotaryPosEmbed):
            fresh = WanRotaryPosEmbed(module.attention_head_dim, module.patch_size, module.max_seq_len)
            init.copy_(module.freqs_cos, fresh.freqs_cos)
            init.copy_(module.freqs_sin, fresh.freqs_sin)
        if isinstance(module, WanTransformerBlock) or module is self:
            for name in ("scale_shift_table", "text_scale_shift_table"):
                table = getattr(module, name, None)
                if isinstance(table, nn.Parameter):
                    init.normal_(table, mean=0.0, std=dim**-0.5)


@functools.cache
def _module_pattern(modules: tuple[str, ...]) -> re.Pattern:
    """A pattern that finds any of `modules` as a whole component of a parameter name."""
    return re.compile(r"(?:^|\.)(?:" + "|".join(map(re.escape, modules)) + r")(?:\.|$)")


__all__ = ["UniViGUPreTrainedModel"]
