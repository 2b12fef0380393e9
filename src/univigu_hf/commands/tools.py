"""`univigu demo`, `univigu calibrate-mag-cache`, `univigu card` and `univigu push`."""

import argparse
import json
import time

from ..utils.saving import write_text_atomic
from ._common import (
    CLIError,
    check_output_dir,
    check_writable,
    emit,
    first_line,
    load_pipeline,
    make_output_dir,
    resolve_model,
    run_pipeline,
    seeded_generator,
)


def demo(args: argparse.Namespace) -> int:
    """`univigu demo`: the embedded shapes-world model (or `--model`) in all three tasks (`shapes.demo.run_demo`)."""
    if args.foundation:
        from ..shapes.foundation_demo import foundation_demo

        report = foundation_demo(args.seed, args.steps, args.vocab_size, args.text_length)
        print(json.dumps(report, indent=2))
        print(
            "Foundation demo OK: the unified model reproduces its Wan base and runs text->video, video->text and "
            "joint flows (random weights; `univigu demo` without --foundation runs the trained embedded model)."
        )
        return 0 if report["prior_preservation_max_abs_diff"] <= 1e-5 else 1
    import univigu_hf

    from ..shapes.demo import demo_summary, run_demo

    check_output_dir(args.output_dir)  # before the model loads; the folder is made once the model is loaded
    start = time.perf_counter()
    pipe = load_pipeline(args)
    load_seconds = time.perf_counter() - start
    make_output_dir(args.output_dir)
    try:
        report = run_demo(
            pipe,
            args.output_dir,
            num_inference_steps=args.steps,
            seed=args.seed,
            sample_path=getattr(univigu_hf, "SAMPLE_VIDEO", None),
            model_name=resolve_model(args.model),
            device=args.device,
            dtype=args.dtype,
            load_seconds=load_seconds,
        )
    except (ValueError, TypeError) as error:  # the pipeline's own argument checks
        raise CLIError(" ".join(str(error).split())) from error
    except OSError as error:
        raise CLIError(f"could not write the demo into {args.output_dir!r}: {first_line(error)}") from error
    emit(args, report, demo_summary(report))
    return 0


def calibrate_mag_cache(args: argparse.Namespace) -> int:
    """`univigu calibrate-mag-cache`: MagCache's magnitude ratios for a model, printed (and written to --output)."""
    from ..pipelines.univigu.mag_cache_calibration import calibrate_mag_ratios

    prompts = args.prompt
    if prompts is None:
        if args.model is not None:
            raise CLIError("--prompt is required with --model (give a few prompts like the model's training data)")
        from ..shapes import TRAIN_PROMPTS

        prompts = list(TRAIN_PROMPTS[:8])
    if args.output:
        check_writable(args.output, "--output")
    pipe = load_pipeline(args)
    steps = args.steps if args.steps is not None else pipe.config.default_num_inference_steps
    mean = run_pipeline(
        calibrate_mag_ratios,
        pipe=pipe,
        prompts=prompts,
        num_inference_steps=steps,
        guidance_scale=args.guidance_scale,
        generator=[seeded_generator(args.seed + i) for i in range(len(prompts))],
    )
    report = {"num_inference_steps": steps, "mag_ratios": mean, "prompts": prompts, "seed": args.seed}
    if args.output:
        try:
            write_text_atomic(args.output, json.dumps(report, indent=2) + "\n")
        except OSError as error:
            raise CLIError(f"could not write --output {args.output!r}: {first_line(error)}") from error
    emit(args, report, [f"MagCacheConfig(mag_ratios={mean}, num_inference_steps={steps})"])
    return 0


def card(args: argparse.Namespace) -> int:
    """`univigu card`: writes (or prints) the model card `push` would upload."""
    from ..hub import card_metadata, create_model_card

    try:
        card = create_model_card(
            args.folder, repo_id=args.repo_id, metrics=args.metrics, base_model=args.base_model, training=args.training
        )
    except (ValueError, TypeError, OSError) as error:
        raise CLIError(" ".join(str(error).split())) from error
    if args.output:
        try:
            write_text_atomic(args.output, str(card))
        except OSError as error:
            raise CLIError(f"could not write --output {args.output!r}: {first_line(error)}") from error
        lines = [f"Wrote the model card of {args.folder} to {args.output}"]
    else:
        lines = [str(card)]
    emit(args, {"output": args.output, "metadata": card_metadata(card), "card": str(card)}, lines)
    return 0


def push(args: argparse.Namespace) -> int:
    """`univigu push`: publishes a saved pipeline/model/adapter folder with its model card."""
    from ..hub import HubPushError, push_to_hub

    try:
        info = push_to_hub(
            args.folder,
            args.repo_id,
            private=args.private,
            commit_message=args.message,
            metrics=args.metrics,
            base_model=args.base_model,
            training=args.training,
            token=args.token,
            revision=args.revision,
            create_pr=args.create_pr,
            ignore_patterns=args.ignore,
        )
    except (HubPushError, ValueError, TypeError, OSError) as error:
        raise CLIError(" ".join(str(error).split())) from error
    report = {"repo_id": info.repo_url.repo_id, "commit_url": info.commit_url, "commit": info.oid}
    report["pr_url"] = info.pr_url
    emit(args, report, [f"Pushed {args.folder} to {info.repo_url} ({info.commit_url})"])
    return 0
