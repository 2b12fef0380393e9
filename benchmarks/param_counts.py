"""Parameter counts on the meta device: diffusers' Wan2.1-T2V-1.3B and UniViGU built on it.

python benchmarks/param_counts.py --output benchmarks/results/param_counts.json
"""

import argparse
import time

import torch
from _report import emit
from diffusers import WanTransformer3DModel

from univigu_hf import UniViGUConfig, UniViGUModel
from univigu_hf.modeling_univigu import is_text_parameter


# diffusers' Wan-AI/Wan2.1-T2V-1.3B-Diffusers transformer/config.json
WAN21_T2V_1_3B = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=12,
    attention_head_dim=128,
    in_channels=16,
    out_channels=16,
    text_dim=4096,
    freq_dim=256,
    ffn_dim=8960,
    num_layers=30,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    eps=1e-6,
    rope_max_seq_len=1024,
)
UMT5_VOCAB_SIZE = 256300  # T5Tokenizer(umt5-xxl).vocab_size: 256,000 pieces + 300 extra ids


def count(model: torch.nn.Module) -> dict:
    total = sum(p.numel() for p in model.parameters())
    text = sum(p.numel() for n, p in model.named_parameters() if is_text_parameter(n))
    groups = {}
    for name, parameter in model.named_parameters():
        key = name.split(".")[0] if not name.startswith("blocks.") else "blocks.*." + name.split(".")[2]
        groups[key] = groups.get(key, 0) + parameter.numel()
    return {"total": total, "text_branch": text, "by_module": dict(sorted(groups.items()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    with torch.device("meta"):
        wan = WanTransformer3DModel(**WAN21_T2V_1_3B)
        results = {"wan2.1_t2v_1.3b": {"total": sum(p.numel() for p in wan.parameters())}}
        for label, text_ffn_dim in (("univigu_1.3b_full_text_ffn", None), ("univigu_1.3b_text_ffn_1536", 1536)):
            config = UniViGUConfig(**WAN21_T2V_1_3B, text_vocab_size=UMT5_VOCAB_SIZE, text_ffn_dim=text_ffn_dim)
            results[label] = count(UniViGUModel(config))
            results[label]["added_over_wan"] = results[label]["total"] - results["wan2.1_t2v_1.3b"]["total"]
    results["seconds"] = round(time.perf_counter() - start, 2)
    emit(results, args.output)


if __name__ == "__main__":
    main()
