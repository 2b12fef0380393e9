"""The Uni-ViGU transformer (a transformers `PreTrainedModel`) and its configuration."""

from .configuration_univigu import UniViGUConfig
from .modeling_univigu import UniViGUModel, UniViGUModelOutput, UniViGUPreTrainedModel
from .transformer_block import UniViGUTransformerBlock
from .video_cache import UniViGUVideoCache, UniViGUVideoCacheLayer, UniViGUVideoContext


__all__ = [
    "UniViGUConfig",
    "UniViGUModel",
    "UniViGUModelOutput",
    "UniViGUPreTrainedModel",
    "UniViGUTransformerBlock",
    "UniViGUVideoCache",
    "UniViGUVideoCacheLayer",
    "UniViGUVideoContext",
]
