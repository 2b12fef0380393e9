"""UniViGU model configuration."""

from transformers import PreTrainedConfig
from transformers.utils import logging


logger = logging.get_logger(__name__)

_SUPPORTED_QK_NORM = ("rms_norm_across_heads",)

_FIELD_TYPES = {
    "num_attention_heads": int,
    "attention_head_dim": int,
    "in_channels": int,
    "out_channels": int,
    "text_dim": int,
    "freq_dim": int,
    "ffn_dim": int,
    "num_layers": int,
    "cross_attn_norm": bool,
    "eps": float,
    "rope_max_seq_len": int,
    "text_vocab_size": int,
    "text_ffn_dim": (int, None),
    "max_text_length": int,
    "video_attends_text": bool,
    "text_rope_theta": float,
    "pad_token_id": (int, None),
    "mask_token_id": (int, None),
}


def _is_instance(value, expected) -> bool:
    options = expected if isinstance(expected, tuple) else (expected,)
    for option in options:
        if option is None and value is None:
            return True
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if option is bool and isinstance(value, bool):
            return True
    return False


def _describe_expected(expected) -> str:
    options = expected if isinstance(expected, tuple) else (expected,)
    names = {int: "an int", float: "a number", bool: "a bool", None: "None"}
    return " or ".join(names[option] for option in options)


# Fields shared with diffusers' `WanTransformer3DModel` config, in its order. `from_wan` copies exactly these.
WAN_CONFIG_FIELDS = (
    "patch_size",
    "num_attention_heads",
    "attention_head_dim",
    "in_channels",
    "out_channels",
    "text_dim",
    "freq_dim",
    "ffn_dim",
    "num_layers",
    "cross_attn_norm",
    "qk_norm",
    "eps",
    "rope_max_seq_len",
)


class UniViGUConfig(PreTrainedConfig):
    r"""
    Configuration of a [`UniViGUModel`]: a Wan2.1 video diffusion transformer extended with a text stream (caption
    tokens denoised by discrete flow matching) that shares attention with the video tokens.

    The defaults describe Uni-ViGU on Wan2.1-T2V-1.3B as released by the authors (full-size text FFN experts,
    umT5 tokenizer vocabulary).

    Args:
        patch_size (`tuple[int, int, int]`, defaults to `(1, 2, 2)`):
            3D patch size (frames, height, width) of the video patch embedding.
        num_attention_heads (`int`, defaults to 12):
            Number of attention heads.
        attention_head_dim (`int`, defaults to 128):
            Channels per head. The hidden size is `num_attention_heads * attention_head_dim`.
        in_channels (`int`, defaults to 16):
            Channels of the video latents (Wan VAE: 16).
        out_channels (`int`, defaults to 16):
            Channels of the predicted velocity.
        text_dim (`int`, defaults to 4096):
            Width of the prompt embeddings (`encoder_hidden_states`, umT5-XXL: 4096).
        freq_dim (`int`, defaults to 256):
            Width of the sinusoidal timestep features.
        ffn_dim (`int`, defaults to 8960):
            Inner width of the video feed-forward networks.
        num_layers (`int`, defaults to 30):
            Number of transformer blocks.
        cross_attn_norm (`bool`, defaults to `True`):
            Whether the cross-attention input is normalised (`norm2` with affine parameters).
        qk_norm (`str`, defaults to `"rms_norm_across_heads"`):
            Query/key normalisation; only Wan's `"rms_norm_across_heads"` is supported.
        eps (`float`, defaults to 1e-6):
            Epsilon of the layer norms.
        rope_max_seq_len (`int`, defaults to 1024):
            Largest number of latent frames/rows/columns the video 3D RoPE tables cover.
        text_vocab_size (`int`, defaults to 256300):
            Rows of the caption-token embedding and columns of the text logits (the umT5 tokenizer's `vocab_size`).
            When `mask_token_id` is set, the mask token is one of these ids.
        text_ffn_dim (`int`, *optional*):
            Inner width of the text FFN experts. `None` means `ffn_dim` (the official full-size copy of the video
            FFN); a smaller value is the "lightweight" expert.
        max_text_length (`int`, defaults to 256):
            Default caption length (tokens) used by pipelines and collators (the official run uses 256).
        video_attends_text (`bool`, defaults to `True`):
            Whether video tokens attend to text tokens in the joint self-attention (official: `True`). With `False`
            the video path is exactly Wan whatever the text, and video keys/values can be reused across captions.
        text_rope_theta (`float`, defaults to 10000.0):
            Base of the 1-D rotary position embedding of the text tokens.
        pad_token_id (`int`, *optional*, defaults to 0):
            Padding token of the caption vocabulary (umT5: 0).
        mask_token_id (`int`, *optional*):
            Mask token of the text source distribution. `None` unless a mask source is used.
    """

    model_type = "univigu"
    attribute_map = {"num_hidden_layers": "num_layers", "vocab_size": "text_vocab_size"}

    patch_size: tuple[int, ...] | list[int] = (1, 2, 2)
    num_attention_heads: int = 12
    attention_head_dim: int = 128
    in_channels: int = 16
    out_channels: int = 16
    text_dim: int = 4096
    freq_dim: int = 256
    ffn_dim: int = 8960
    num_layers: int = 30
    cross_attn_norm: bool = True
    qk_norm: str | None = "rms_norm_across_heads"
    eps: float = 1e-6
    rope_max_seq_len: int = 1024
    text_vocab_size: int = 256300
    text_ffn_dim: int | None = None
    max_text_length: int = 256
    video_attends_text: bool = True
    text_rope_theta: float = 10000.0
    pad_token_id: int | None = 0
    mask_token_id: int | None = None

    def __post_init__(self, **kwargs):
        # JSON has no tuples: a reloaded config carries a list.
        self.patch_size = tuple(self.patch_size)
        self._check_values()
        super().__post_init__(**kwargs)

    @property
    def hidden_size(self) -> int:
        """Width of the token stream, `num_attention_heads * attention_head_dim`."""
        return self.num_attention_heads * self.attention_head_dim

    @property
    def effective_text_ffn_dim(self) -> int:
        """Inner width of the text FFN experts (`text_ffn_dim`, or `ffn_dim` when unset)."""
        return self.ffn_dim if self.text_ffn_dim is None else self.text_ffn_dim

    def _check_values(self):
        """Checks types and values; every error names the field, the value and what is accepted."""
        for name, expected in _FIELD_TYPES.items():
            value = getattr(self, name)
            if not _is_instance(value, expected):
                raise TypeError(
                    f"{name} must be {_describe_expected(expected)}, got {value!r} ({type(value).__name__})"
                )
        if len(self.patch_size) != 3 or any(int(p) < 1 for p in self.patch_size):
            raise ValueError(f"patch_size must be 3 positive integers (frames, height, width), got {self.patch_size}")
        positive = {
            "num_attention_heads": self.num_attention_heads,
            "attention_head_dim": self.attention_head_dim,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "text_dim": self.text_dim,
            "freq_dim": self.freq_dim,
            "ffn_dim": self.ffn_dim,
            "num_layers": self.num_layers,
            "rope_max_seq_len": self.rope_max_seq_len,
            "text_vocab_size": self.text_vocab_size,
            "max_text_length": self.max_text_length,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if self.attention_head_dim % 2:
            raise ValueError(f"attention_head_dim must be even (rotary embeddings), got {self.attention_head_dim}")
        if self.text_ffn_dim is not None and self.text_ffn_dim < 1:
            raise ValueError(
                f"text_ffn_dim must be None (same as ffn_dim) or a positive integer, got {self.text_ffn_dim}"
            )
        if self.qk_norm not in _SUPPORTED_QK_NORM:
            raise ValueError(f"qk_norm must be one of {_SUPPORTED_QK_NORM}, got {self.qk_norm!r}")
        for name in ("pad_token_id", "mask_token_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.text_vocab_size:
                raise ValueError(
                    f"{name} must be None or an id in [0, text_vocab_size={self.text_vocab_size}), got {value}"
                )

    @classmethod
    def from_wan_config(cls, wan_config: dict, **overrides) -> "UniViGUConfig":
        """
        Builds a config from a diffusers `WanTransformer3DModel` config.

        Args:
            wan_config (`dict`):
                The Wan transformer config (`WanTransformer3DModel.config` or its `config.json`).
            **overrides:
                UniViGU fields (`text_vocab_size`, `text_ffn_dim`, ...) and Wan fields to override.

        Returns:
            `UniViGUConfig`: the unified config with the Wan fields copied.

        Raises:
            `ValueError`: if the Wan config uses features UniViGU does not support (image conditioning).
        """
        wan_config = dict(wan_config)
        for unsupported in ("image_dim", "added_kv_proj_dim", "pos_embed_seq_len"):
            if wan_config.get(unsupported) is not None:
                raise ValueError(
                    f"wan_config has {unsupported}={wan_config[unsupported]!r}; UniViGU extends Wan text-to-video "
                    "transformers only (image_dim, added_kv_proj_dim and pos_embed_seq_len must be None)"
                )
        kwargs = {name: wan_config[name] for name in WAN_CONFIG_FIELDS if name in wan_config}
        kwargs.update(overrides)
        return cls(**kwargs)

    def to_wan_config(self) -> dict:
        """Returns the diffusers `WanTransformer3DModel` config of the video path (for `WanTransformer3DModel(**cfg)`)."""
        config = {name: getattr(self, name) for name in WAN_CONFIG_FIELDS}
        config["patch_size"] = tuple(config["patch_size"])
        return config


__all__ = ["UniViGUConfig"]
