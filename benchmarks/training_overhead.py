"""Training overhead: samples/s of a tiny Knowledge Recall run with UniViGUTrainer vs the bare unified-flow loss in a
plain loop (with the Trainer's default gradient clipping), side by side on the same prepared data and model init
(both timed after the same warm-up steps; runs alternate, medians reported); the peak memory of each (CPU: the
process's resident set, sampled during training; CUDA: `max_memory_allocated`); the losses before and after training.

Goal: Trainer time per sample <= 1.10x the bare loop's.

    python benchmarks/training_overhead.py --output docs/results/training_overhead.json
    python benchmarks/training_overhead.py --quick      # seconds-long smoke run
"""

import contextlib
import os
import statistics
import tempfile
import threading
import time

import psutil
import torch
from _common import environment, parser
from _report import emit
from transformers import TrainerCallback, TrainingArguments

from univigu_hf.testing import build_tiny_pipelines, build_tiny_video_folder
from univigu_hf.training import (
    UniFlowTrainingConfig,
    UniViGUDataCollator,
    UniViGUTrainer,
    load_video_dataset,
    prepare_dataset,
    step_generator,
    unified_flow_loss,
)


GOAL = 1.10


@contextlib.contextmanager
def peak_memory(device: str, interval: float = 0.005):
    """Yields a dict that holds, on exit, the peak memory in MB during the block (see the module docstring)."""
    result = {}
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        yield result
        torch.cuda.synchronize()
        result["peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        return
    process, stop = psutil.Process(), threading.Event()
    peak = [process.memory_info().rss]

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()
        result["peak_mb"] = round(max(peak[0], process.memory_info().rss) / 2**20, 1)


class StepTimer(TrainerCallback):
    """Times the Trainer's steps after `warmup` of them, as the bare loop is timed."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.end = warmup, None, None

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.warmup:
            self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == state.max_steps:
            if str(args.device).startswith("cuda"):
                torch.cuda.synchronize()
            self.end = time.perf_counter()


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
    args_parser = parser(__doc__)
    args_parser.add_argument("--steps", type=int, default=200)
    args_parser.add_argument("--batch-size", type=int, default=4)
    args_parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each; medians reported")
    args = args_parser.parse_args()
    if args.quick:
        args.steps, args.repeats = 12, 1
    device = args.device
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
        return pipe, prepared, null.to(device), collator

    def bare_loop() -> tuple[float, dict, dict]:
        """The loss in a plain loop, with the Trainer's default gradient clipping (max_grad_norm=1.0)."""
        pipe, prepared, null, collator = setup()
        pipe.transformer.to(device)
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
        with peak_memory(device) as memory:
            while step < args.steps:
                for batch in loader:
                    if step == warmup:
                        start = time.perf_counter()
                    batch.pop("num_truncated")
                    batch = to_device(batch, device)
                    generator = step_generator(0, step)
                    out = unified_flow_loss(pipe.transformer, batch, pipe.scheduler, config, generator, null)
                    out.loss.backward()
                    torch.nn.utils.clip_grad_norm_(pipe.transformer.parameters(), 1.0)
                    optimizer.step()
                    optimizer.zero_grad()
                    step += 1
                    if step == args.steps:
                        break
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            steps_per_second = (args.steps - warmup) / (time.perf_counter() - start)
        pipe.transformer.eval()
        return steps_per_second, memory, evaluate(pipe, fixed_batch, config, null)

    def trainer_loop() -> tuple[float, dict, dict]:
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
            use_cpu=device == "cpu",
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
        timer = StepTimer(warmup)
        trainer.add_callback(timer)
        with peak_memory(device) as memory:
            trainer.train()
        pipe.transformer.eval()
        steps_per_second = (args.steps - warmup) / (timer.end - timer.start)
        return steps_per_second, memory, evaluate(pipe, fixed_batch, config, null)

    pipe, prepared, null, collator = setup()
    pipe.transformer.to(device)
    fixed_batch = to_device(collator([prepared[i] for i in range(8)]), device)
    before = evaluate(pipe, fixed_batch, config, null)
    warmup = min(5, args.steps // 4)
    # Side by side: bare, Trainer, bare, Trainer, ... so that a change in machine load affects both alike.
    runs = {"bare": [], "trainer": []}
    for _ in range(args.repeats):
        runs["bare"].append(bare_loop())
        runs["trainer"].append(trainer_loop())
    bare_steps_per_second = statistics.median(run[0] for run in runs["bare"])
    trainer_steps_per_second = statistics.median(run[0] for run in runs["trainer"])
    (_, bare_memory, after_bare), (_, trainer_memory, after_trainer) = runs["bare"][0], runs["trainer"][0]

    ratio = bare_steps_per_second / trainer_steps_per_second
    emit(
        {
            "benchmark": "training_overhead",
            "quick": args.quick,
            **environment(device),
            "setup": (
                f"tiny pipeline, 16 clips 16x16x5, batch {args.batch_size}, {args.steps} steps, lr 1e-3, gradient "
                f"clipping at 1.0 in both; {args.repeats} alternating runs each, medians"
            ),
            "bare_loop_samples_per_second_runs": [round(run[0] * args.batch_size, 2) for run in runs["bare"]],
            "trainer_samples_per_second_runs": [round(run[0] * args.batch_size, 2) for run in runs["trainer"]],
            "bare_loop_samples_per_second": round(bare_steps_per_second * args.batch_size, 2),
            "trainer_samples_per_second": round(trainer_steps_per_second * args.batch_size, 2),
            "trainer_over_bare_time_ratio": round(ratio, 3),
            "goal_trainer_over_bare": GOAL,
            "goal_met": None if args.quick else ratio <= GOAL,
            "bare_loop_peak_memory_mb": bare_memory["peak_mb"],
            "trainer_peak_memory_mb": trainer_memory["peak_mb"],
            "losses_before": before,
            "losses_after_bare_loop": after_bare,
            "losses_after_trainer": after_trainer,
        },
        args.output,
    )


def to_device(batch: dict, device: str) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


if __name__ == "__main__":
    main()
