"""Runs every benchmark (one process each, one after the other), writes their JSON and prints the summary table.

python benchmarks/run_all.py                       # all of them -> docs/results/*.json (`make bench`)
python benchmarks/run_all.py --quick               # seconds-long smoke runs -> outputs/bench-quick/
python benchmarks/run_all.py --only captioning     # some of them
python benchmarks/run_all.py --table               # only print the table of the existing results
"""

import argparse
import os
import subprocess
import sys
import time

from _report import SUMMARIES, summary_table


HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BENCHMARKS = list(SUMMARIES)  # the order they run in


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every script with --quick (numbers mean nothing)")
    parser.add_argument(
        "--output-dir", default=None, help="default: docs/results, or outputs/bench-quick with --quick"
    )
    parser.add_argument("--device", default=None, help="passed to every script (default: theirs, cuda if available)")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=None)
    parser.add_argument("--table", action="store_true", help="print the table of the existing results and stop")
    args = parser.parse_args()
    default_dir = os.path.join("outputs", "bench-quick") if args.quick else os.path.join("docs", "results")
    output_dir = os.path.join(ROOT, args.output_dir or default_dir)
    names = args.only or BENCHMARKS
    if args.table:
        print(summary_table(output_dir, names))
        return 0

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.join(ROOT, "src"), env.get("PYTHONPATH")]))
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    failed, started = [], time.perf_counter()
    for name in names:
        command = [
            sys.executable,
            os.path.join(HERE, f"{name}.py"),
            "--output",
            os.path.join(output_dir, f"{name}.json"),
        ]
        command += ["--quick"] if args.quick else []
        command += ["--device", args.device] if args.device else []
        start = time.perf_counter()
        print(f"[bench] {name} ...", end=" ", flush=True)
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        print(f"{time.perf_counter() - start:.1f} s{'' if result.returncode == 0 else ' FAILED'}", flush=True)
        if result.returncode != 0:
            failed.append(name)
            print(result.stderr[-4000:], file=sys.stderr)
    print(
        f"[bench] {len(names) - len(failed)}/{len(names)} done in {time.perf_counter() - started:.0f} s; JSON in {output_dir}\n"
    )
    print(summary_table(output_dir, names))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
