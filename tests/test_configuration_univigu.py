import pytest
from diffusers import WanTransformer3DModel
from transformers import AutoConfig

from univigu_hf import UniViGUConfig
from univigu_hf.testing import tiny_wan_config


def test_defaults_describe_wan21_t2v_1_3b():
    config = UniViGUConfig()
    assert config.model_type == "univigu"
    assert (config.num_attention_heads, config.attention_head_dim, config.ffn_dim, config.num_layers) == (
        12,
        128,
        8960,
        30,
    )
    assert config.hidden_size == 1536 and config.effective_text_ffn_dim == 8960
    assert config.video_attends_text is True and config.mask_token_id is None
    assert config.num_hidden_layers == 30 and config.vocab_size == config.text_vocab_size


def test_save_and_autoconfig_round_trip(tmp_path):
    config = UniViGUConfig(**tiny_wan_config(), text_vocab_size=50, text_ffn_dim=8, mask_token_id=49)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, UniViGUConfig)
    assert loaded.patch_size == (1, 2, 2)  # JSON lists come back as tuples
    assert loaded.to_diff_dict() == config.to_diff_dict()


def test_wan_config_round_trip():
    wan_config = dict(WanTransformer3DModel(**tiny_wan_config()).config)
    config = UniViGUConfig.from_wan_config(wan_config, text_vocab_size=10)
    assert WanTransformer3DModel(**config.to_wan_config()).config == WanTransformer3DModel(**tiny_wan_config()).config
    with pytest.raises(ValueError, match="image_dim=1280"):
        UniViGUConfig.from_wan_config({**wan_config, "image_dim": 1280}, text_vocab_size=10)


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        (dict(num_layers="2"), TypeError, "num_layers must be an int, got '2'"),
        (dict(video_attends_text=1), TypeError, "video_attends_text must be a bool"),
        (dict(text_ffn_dim=1.5), TypeError, "text_ffn_dim must be an int or None"),
        (dict(patch_size=(1, 2)), ValueError, "patch_size must be 3 positive integers"),
        (dict(num_attention_heads=0), ValueError, "num_attention_heads must be a positive integer, got 0"),
        (dict(attention_head_dim=13), ValueError, "attention_head_dim must be even"),
        (dict(text_ffn_dim=0), ValueError, "text_ffn_dim must be None"),
        (dict(qk_norm="layer_norm"), ValueError, "qk_norm must be one of"),
        (
            dict(text_vocab_size=10, mask_token_id=10),
            ValueError,
            r"mask_token_id must be None or an id in \[0, text_vocab_size=10\)",
        ),
        (dict(text_vocab_size=10, pad_token_id=-1), ValueError, "pad_token_id must be None or an id"),
        (dict(max_text_length=0), ValueError, "max_text_length must be a positive integer"),
    ],
)
def test_bad_config_values_are_clear_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        UniViGUConfig(**kwargs)
