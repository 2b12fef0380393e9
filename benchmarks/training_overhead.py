"""Steps/second of a tiny Knowledge Recall run with UniViGUTrainer vs the bare unified-flow loss in a plain loop,
side by side on the same prepared data and model init, plus the losses before and after training.

    python benchmarks/training_overhead.py --output benchmarks/results/training_overhead.json
"""

import argparse
import os
import sys
import tempfile
import time

import torch
from _report import emit
from transformers import TrainingArguments


sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from conftest import build_tiny_pipelines, build_tiny_video_folder  # noqa: E402
from univigu_hf.training import (  # noqa: E402
    UniFlowTrainingConfig,
    UniViGUDataCollator,
    UniViGUTrainer,
    load_video_dataset,
    prepare_dataset,
    step_generator,
    unified_flow_loss,
)


def evaluate(pipe, batch, config, null_condition) -> dict:
    """Mean losses over 8 fixed noise draws of a fixed batch (same draws before and after training)."""
    video, text = 0.0, 0.0
    with torch.no_grad():
        for draw in range(8):
            out = unified_flow_loss(
                pipe.transformer, batch, pipe.scheduler, config, step_generator(99, draw), null_condition
            )
            video, text = video + float(out.video_loss) / 8, text + float(out.text_loss) / 8
    return {"loss_video": round(video, 4), "loss_text": round(text, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp()
    folder = build_tiny_video_folder(os.path.join(workdir, "videos"), num_videos=16)
    config = UniFlowTrainingConfig(condition_dropout_prob=0.1)

    def setup():
        pipe = build_tiny_pipelines()[0]
        dataset, base_dir = load_video_dataset(folder)
        prepared = prepare_dataset(pipe, dataset, base_dir=base_dir, cache_dir=os.path.join(workdir, "prepared"))
        with torch.no_grad():
            null = pipe.encode_prompt(prompt=[""], do_classifier_free_guidance=False, max_sequence_length=512)[0]
        collator = UniViGUDataCollator(max_text_length=pipe.transformer.config.max_text_length, pad_token_id=0)
        return pipe, prepared, null, collator

    # Bare loop.
    pipe, prepared, null, collator = setup()
    fixed_batch = collator([prepared[i] for i in range(8)])
    before = evaluate(pipe, fixed_batch, config, null)
    loader = torch.utils.data.DataLoader(
        prepared,
        batch_size=args.batch_size,
        shuffle=True,
        collate_fn=collator,
        generator=torch.Generator().manual_seed(0),
    )
    optimizer = torch.optim.AdamW(pipe.transformer.parameters(), lr=1e-3)
    pipe.transformer.train()
    step, start = 0, None
    while step < args.steps:
        for batch in loader:
            if step == 5:
                start = time.perf_counter()  # after warm-up
            batch.pop("num_truncated")
            out = unified_flow_loss(pipe.transformer, batch, pipe.scheduler, config, step_generator(0, step), null)
            out.loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            if step == args.steps:
                break
    bare_steps_per_second = (args.steps - 5) / (time.perf_counter() - start)
    pipe.transformer.eval()
    after_bare = evaluate(pipe, fixed_batch, config, null)

    # Trainer.
    pipe, prepared, null, collator = setup()
    training_args = TrainingArguments(
        output_dir=os.path.join(workdir, "trainer"),
        per_device_train_batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        logging_steps=50,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=0,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = UniViGUTrainer(
        model=pipe.transformer,
        args=training_args,
        train_dataset=prepared,
        data_collator=collator,
        flow_scheduler=pipe.scheduler,
        uniflow_config=config,
        null_condition=null,
    )
    trainer_seconds = time.perf_counter()
    trainer.train()
    trainer_seconds = time.perf_counter() - trainer_seconds
    pipe.transformer.eval()
    after_trainer = evaluate(pipe, fixed_batch, config, null)
    trainer_steps_per_second = args.steps / trainer_seconds

    emit(
        {
            "setup": f"tiny pipeline, 16 clips 16x16x5, batch {args.batch_size}, {args.steps} steps, lr 1e-3, CPU",
            "threads": torch.get_num_threads(),
            "bare_loop_steps_per_second": round(bare_steps_per_second, 2),
            "trainer_steps_per_second": round(trainer_steps_per_second, 2),
            "trainer_over_bare_time_ratio": round(bare_steps_per_second / trainer_steps_per_second, 3),
            "losses_before": before,
            "losses_after_bare_loop": after_bare,
            "losses_after_trainer": after_trainer,
        },
        args.output,
    )


if __name__ == "__main__":
    main()
