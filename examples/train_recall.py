"""Stage 1 of Uni-ViGU training, Knowledge Recall: the text stream learns to reconstruct each video's generation
prompt (the prompt condition is dropped at random so it cannot simply be copied).

    python examples/train_recall.py --config examples/configs/recall.yaml
    python examples/train_recall.py --config examples/configs/recall.yaml --trainable text --max_steps 500
    accelerate launch --config_file examples/accelerate_configs/ddp.yaml examples/train_recall.py --config ...

See docs/training.md. Every flag of TrainingArguments and TRL's ModelConfig (LoRA: --use_peft, --lora_r, ...) works.
"""

from univigu_hf.training.script import run


if __name__ == "__main__":
    run("recall")
