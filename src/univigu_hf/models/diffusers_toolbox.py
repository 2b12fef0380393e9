"""diffusers' memory and speed toolbox on `UniViGUModel`, a transformers model: the cache hooks (`CacheMixin`), layerwise
casting, group offloading, regional compilation and attention backends, opted into with the class attributes and
calls diffusers' own models use (`WanTransformer3DModel`'s), so the code a diffusers user writes for Wan works."""

import torch
from diffusers import ModelMixin
from diffusers.models.cache_utils import CacheMixin

from .lora import DiffusersLoraMixin


# Every module whose weights layerwise casting must leave alone: Wan's patterns (the patch embedding, the condition
# embedder, the norms) plus the text stream's embedding and time embedder, whose outputs feed fp32 modulation. They
# cover the fp32-kept modules (`_keep_in_fp32_modules_strict`: time embedders, norms; the modulation tables are
# parameters of their blocks, not layers, and are never cast).
SKIP_LAYERWISE_CASTING_PATTERNS = (
    "patch_embedding",
    "condition_embedder",
    "norm",
    "text_embedding",
    "text_time_embedding",
)


def register_block_with_the_cache_hooks() -> None:
    """
    Tells diffusers' cache hooks how a `UniViGUTransformerBlock` returns its streams: the video tokens first
    (`hidden_states`), the text tokens second (`encoder_hidden_states`, as in diffusers' dual-stream blocks). The hooks
    look blocks up in this registry; diffusers registers its own blocks the same way.
    """
    from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry

    from .transformer_block import UniViGUTransformerBlock

    TransformerBlockRegistry.register(
        model_class=UniViGUTransformerBlock,
        metadata=TransformerBlockMetadata(return_hidden_states_index=0, return_encoder_hidden_states_index=1),
    )


class DiffusersToolboxMixin(DiffusersLoraMixin, CacheMixin):
    """
    The diffusers model toolbox for [`UniViGUModel`]: `enable_cache` / `disable_cache` / `cache_context` (diffusers'
    `CacheMixin`: FirstBlockCache, TaylorSeer, MagCache, FasterCache, Pyramid Attention Broadcast),
    `enable_layerwise_casting`, `enable_group_offload`, `compile_repeated_blocks`, `set_attention_backend` — the
    methods of diffusers' `ModelMixin`, which only read the class attributes below; and diffusers' LoRA methods
    (`load_lora_adapter`, `fuse_lora`, `unload_lora`, ...: [`DiffusersLoraMixin`]).
    """

    _repeated_blocks = ["UniViGUTransformerBlock"]
    _skip_layerwise_casting_patterns = list(SKIP_LAYERWISE_CASTING_PATTERNS)
    _supports_group_offloading = True

    def enable_cache(self, config) -> None:
        """
        Enables one of diffusers' cache hooks for text-to-video and joint generation (see diffusers'
        `CacheMixin.enable_cache`); [`UniViGUPipeline.caption`] refuses them (its video is fixed: the exact video
        cache reuses it instead).

        Args:
            config: a `FirstBlockCacheConfig`, `TaylorSeerCacheConfig`, `MagCacheConfig`, `FasterCacheConfig` or
                `PyramidAttentionBroadcastConfig` from `diffusers`.
        """
        from diffusers import FasterCacheConfig

        if isinstance(config, FasterCacheConfig) and not config.is_guidance_distilled:
            raise ValueError(
                "FasterCacheConfig needs is_guidance_distilled=True here: UniViGUPipeline runs the conditional and "
                "unconditional passes of CFG as two calls (as WanPipeline), while FasterCache's unconditional-branch "
                "skipping expects them batched in one; with is_guidance_distilled=True its attention approximation "
                "applies to both calls"
            )
        register_block_with_the_cache_hooks()
        super().enable_cache(config)

    def enable_layerwise_casting(
        self,
        storage_dtype: torch.dtype = torch.float8_e4m3fn,
        compute_dtype: torch.dtype | None = None,
        skip_modules_pattern: tuple[str, ...] | None = None,
        skip_modules_classes: tuple[type[torch.nn.Module], ...] | None = None,
        non_blocking: bool = False,
    ) -> None:
        """
        Stores the weights in `storage_dtype` (e.g. fp8) and upcasts each layer to `compute_dtype` (default: the
        model's dtype) for its forward, as diffusers' `ModelMixin.enable_layerwise_casting`; the model's skip patterns
        and fp32 modules are never cast.
        """
        if compute_dtype is None:
            compute_dtype = self.dtype
        if skip_modules_pattern is not None:
            skip_modules_pattern = tuple(skip_modules_pattern)
        ModelMixin.enable_layerwise_casting(
            self,
            storage_dtype=storage_dtype,
            compute_dtype=compute_dtype,
            skip_modules_pattern=skip_modules_pattern,
            skip_modules_classes=skip_modules_classes,
            non_blocking=non_blocking,
        )

    def enable_group_offload(self, onload_device: torch.device, **kwargs) -> None:
        """Keeps the weights on `offload_device` (default CPU) and moves groups of blocks (`offload_type="block_level"`,
        `num_blocks_per_group`) or single layers (`"leaf_level"`) to `onload_device` for their forward, with CUDA
        streams on request (`use_stream=True`); diffusers' `ModelMixin.enable_group_offload`, same arguments."""
        ModelMixin.enable_group_offload(self, onload_device, **kwargs)

    def compile_repeated_blocks(self, *args, **kwargs) -> None:
        """`torch.compile`s each `UniViGUTransformerBlock` (regional compilation: one compiled graph reused by every
        block), as diffusers' `ModelMixin.compile_repeated_blocks`; arguments go to `torch.compile`."""
        ModelMixin.compile_repeated_blocks(self, *args, **kwargs)

    def set_attention_backend(self, backend: str) -> None:
        """
        Selects the attention backend of every attention layer through diffusers' dispatcher (e.g. `"native"`,
        `"flash"`, `"_native_cudnn"`, `"sage"`); see `diffusers.models.attention_dispatch.AttentionBackendName`.
        Backends without mask support (flash, sage) only work when no caption token is padded.

        Args:
            backend (`str`): the backend name.
        """
        ModelMixin.set_attention_backend(self, backend)

    def reset_attention_backend(self) -> None:
        """Returns every attention layer to diffusers' default backend."""
        ModelMixin.reset_attention_backend(self)


__all__ = [
    "DiffusersToolboxMixin",
    "SKIP_LAYERWISE_CASTING_PATTERNS",
    "register_block_with_the_cache_hooks",
]
