"""Grow a Uni-ViGU model out of a diffusers Wan2.1 text-to-video checkpoint and save it.

    python examples/grow_from_wan.py --wan Wan-AI/Wan2.1-T2V-1.3B-Diffusers --text-vocab-size 256300 --output univigu-1.3b
    python examples/grow_from_wan.py --tiny --output /tmp/univigu-tiny     # offline, builds a tiny random Wan first

The result loads with `transformers.AutoModel.from_pretrained(output)` (after `import univigu_hf`).
"""

import argparse

import torch
from diffusers import WanTransformer3DModel

from univigu_hf import UniViGUModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wan", help="diffusers Wan pipeline/transformer folder or repo id")
    parser.add_argument("--tiny", action="store_true", help="use a tiny random Wan (offline smoke run)")
    parser.add_argument("--text-vocab-size", type=int, default=256300)
    parser.add_argument("--text-ffn-dim", type=int, default=None, help="None = full-size copy of the video FFN")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--seed", type=int, default=0, help="seed of the new caption-token embedding")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    if bool(args.wan) == args.tiny:
        parser.error("pass exactly one of --wan or --tiny")

    torch.manual_seed(args.seed)
    if args.tiny:
        wan = WanTransformer3DModel(
            num_attention_heads=2, attention_head_dim=16, text_dim=32, ffn_dim=64, num_layers=2
        )
        model = UniViGUModel.from_wan(wan, text_vocab_size=args.text_vocab_size, text_ffn_dim=args.text_ffn_dim)
    else:
        model = UniViGUModel.from_wan(
            args.wan,
            text_vocab_size=args.text_vocab_size,
            text_ffn_dim=args.text_ffn_dim,
            torch_dtype=getattr(torch, args.dtype),
        )
    model.save_pretrained(args.output)
    print(f"saved {sum(p.numel() for p in model.parameters()):,} parameters to {args.output}")


if __name__ == "__main__":
    main()
