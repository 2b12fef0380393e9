"""Parameter counts on the meta device, and the bf16 memory they imply: diffusers' Wan2.1-T2V-1.3B and -14B, UniViGU
built on them, the umT5-XXL prompt encoder and the Wan VAE; plus the size of the captioning video context cache at
Wan's 480x832x81 (docs/scaling.md uses these numbers).

    python benchmarks/param_counts.py --output docs/results/param_counts.json
"""

import time

import torch
from _common import WAN21_T2V_1_3B, parser
from _report import emit
from diffusers import AutoencoderKLWan, WanTransformer3DModel
from transformers import UMT5Config, UMT5EncoderModel

from univigu_hf import UniViGUConfig, UniViGUModel
from univigu_hf.models.wan_growth import is_text_parameter


# Wan-AI/Wan2.1-T2V-14B-Diffusers: the same with 40 heads, ffn 13824, 40 layers.
WAN21_T2V_14B = {**WAN21_T2V_1_3B, "num_attention_heads": 40, "ffn_dim": 13824, "num_layers": 40}
UMT5_VOCAB_SIZE = 256300  # T5Tokenizer(umt5-xxl).vocab_size: 256,000 pieces + 300 extra ids
# google/umt5-xxl's encoder (Wan's text_encoder).
UMT5_XXL = dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64)
WAN_480P_TOKENS = 21 * 30 * 52  # 81 frames -> 21 latent frames; 480x832 -> 60x104 latents -> 30x52 patches
GB = 1e9


def count(model: torch.nn.Module) -> dict:
    total = sum(p.numel() for p in model.parameters())
    text = sum(p.numel() for n, p in model.named_parameters() if is_text_parameter(n))
    groups = {}
    for name, parameter in model.named_parameters():
        key = name.split(".")[0] if not name.startswith("blocks.") else "blocks.*." + name.split(".")[2]
        groups[key] = groups.get(key, 0) + parameter.numel()
    return {"total": total, "text_branch": text, "by_module": dict(sorted(groups.items()))}


def main() -> None:
    args = parser(__doc__).parse_args()  # --quick/--device accepted for `run_all.py`; counting takes a second
    start = time.perf_counter()
    results = {"benchmark": "param_counts"}
    with torch.device("meta"):
        for size, wan_config in (("1.3b", WAN21_T2V_1_3B), ("14b", WAN21_T2V_14B)):
            wan_total = sum(p.numel() for p in WanTransformer3DModel(**wan_config).parameters())
            results[f"wan2.1_t2v_{size}"] = {"total": wan_total, "bf16_gb": round(2 * wan_total / GB, 2)}
            for label, text_ffn_dim in (("full_text_ffn", None), ("text_ffn_1536", 1536)):
                config = UniViGUConfig(**wan_config, text_vocab_size=UMT5_VOCAB_SIZE, text_ffn_dim=text_ffn_dim)
                row = count(UniViGUModel(config))
                row["added_over_wan"] = row["total"] - wan_total
                row["bf16_gb"] = round(2 * row["total"] / GB, 2)
                results[f"univigu_{size}_{label}"] = row
            hidden = wan_config["num_attention_heads"] * wan_config["attention_head_dim"]
            cache = 2 * wan_config["num_layers"] * WAN_480P_TOKENS * hidden * 2
            results[f"video_context_cache_{size}_480x832x81_bf16_gb"] = round(cache / GB, 2)
        encoder = sum(p.numel() for p in UMT5EncoderModel(UMT5Config(**UMT5_XXL)).parameters())
        results["umt5_xxl_encoder"] = {"total": encoder, "bf16_gb": round(2 * encoder / GB, 2)}
        vae = sum(p.numel() for p in AutoencoderKLWan().parameters())
        results["wan_vae"] = {"total": vae, "fp32_gb": round(4 * vae / GB, 2)}
    results["video_tokens_480x832x81"] = WAN_480P_TOKENS
    results["seconds"] = round(time.perf_counter() - start, 2)
    emit(results, args.output)


if __name__ == "__main__":
    main()
