"""`prepare_dataset` on a folder of mp4 clips with one video reader vs the default threaded readers, in one run.

python benchmarks/data_preparation.py --output docs/results/data_preparation.json
python benchmarks/data_preparation.py --quick      # seconds-long smoke run

The clips are the shapes world's (9 frames of 32x32, the embedded default model's training data) and the pipeline is
the embedded default model, so the VAE and text encoder are those `make train-demo` prepares its data with. Every call
writes into a fresh cache folder (no cache hits); the prepared latents of both settings are compared.
"""

import os
import tempfile

import numpy as np
from _common import compare_seconds, environment, parser
from _report import emit

import univigu_hf
from univigu_hf import UniViGUPipeline, shapes
from univigu_hf.training import load_video_dataset, prepare_dataset, video_reading


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--num_clips", type=int, default=240)
    args_parser.add_argument("--repeats", type=int, default=3)
    args = args_parser.parse_args()
    if args.quick:
        args.num_clips, args.repeats = 16, 1

    pipeline = UniViGUPipeline.from_pretrained(univigu_hf.DEFAULT_MODEL).to(args.device)
    threaded = video_reading._VIDEO_READERS
    with tempfile.TemporaryDirectory() as work:
        folder = os.path.join(work, "clips")
        shapes.export_folder(folder, args.num_clips)  # the defaults: seed 0, train split, 9 frames of 32x32
        dataset, base_dir = load_video_dataset(folder, stage="refine")

        def prepare(readers: int):
            video_reading._VIDEO_READERS = readers
            try:
                return prepare_dataset(
                    pipeline,
                    dataset,
                    stage="refine",
                    base_dir=base_dir,
                    num_frames=9,
                    cache_dir=tempfile.mkdtemp(dir=work),
                    batch_size=16,
                    device=args.device,
                )
            finally:
                video_reading._VIDEO_READERS = threaded

        one, many = prepare(1), prepare(threaded)
        same = bool(np.array_equal(np.asarray(one["video_latents"]), np.asarray(many["video_latents"])))
        seconds = compare_seconds(
            {"one_reader": lambda: prepare(1), f"{threaded}_readers": lambda: prepare(threaded)},
            args.repeats,
            args.device,
            warmup=0,
        )
    results = {
        "benchmark": "data_preparation",
        "quick": args.quick,
        **environment(args.device),
        "clips": f"{args.num_clips} shapes-world mp4 clips, 9 frames of 32x32; the embedded default model",
        "num_clips": args.num_clips,
        "video_readers": threaded,
        "same_latents": same,
        "ms_per_clip": {name: round(1000 * value / args.num_clips, 1) for name, value in seconds.items()},
        "speedup": round(seconds["one_reader"] / seconds[f"{threaded}_readers"], 2),
    }
    emit(results, args.output)


if __name__ == "__main__":
    main()
