"""Stage 2 of Uni-ViGU training, Capability Refinement: the text stream learns the detailed captions, starting from a
Knowledge Recall checkpoint.

    python examples/train_refine.py --config examples/configs/refine.yaml --init_from outputs/recall

See docs/training.md. Every flag of TrainingArguments and TRL's ModelConfig (LoRA: --use_peft, --lora_r, ...) works.
"""

from univigu_hf.training.script import run


if __name__ == "__main__":
    run("refine")
