"""
Runs the libraries' own common test mixins on univigu_hf's classes and reports passed / failed / skipped counts.

    python scripts/library_mixins/run.py --transformers-tests PATH/transformers/tests \
        --diffusers-tests PATH/diffusers/tests [--json report.json] [-k EXPR]

`--transformers-tests` is the `tests/` folder of a transformers checkout at the installed version
(`git clone --depth 1 -b v$(python -c 'import transformers; print(transformers.__version__)')
https://github.com/huggingface/transformers`), or of its source distribution (`pip download --no-binary :all:
--no-deps transformers==VERSION`), which ships the common files but not `exporters/`, `generation/` and `utils/`:
then the three siblings they import get stand-ins (an export mixin with no tests, a generation mixin that is never
used by a model that does not generate, and transformers' common config kwargs restricted to the attributes
`PreTrainedConfig` has), and the report says so. `--diffusers-tests` is the `tests/` folder of a diffusers checkout.

The mixins' code is read from those folders and never copied into this repository: each harness here
(`transformers_model_test.py`, `diffusers_pipeline_test.py`, `diffusers_scheduler_test.py`) is copied into a
temporary copy of the library's `tests` package, next to the mixin it subclasses, and pytest runs it there.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

# The siblings transformers' common test files import, for a source distribution that does not ship them.
TRANSFORMERS_STAND_INS = {
    "exporters/test_export.py": "class ExportTesterMixin:\n    pass\n",
    "generation/test_utils.py": "class GenerationTesterMixin:\n    pass\n",
    "utils/test_configuration_utils.py": (
        "config_common_kwargs = {\n"
        "    'return_dict': False,\n"
        "    'output_hidden_states': True,\n"
        "    'output_attentions': True,\n"
        "    'dtype': 'float16',\n"
        "    'chunk_size_feed_forward': 5,\n"
        "    'architectures': ['BertModel'],\n"
        "    'id2label': {0: 'label'},\n"
        "    'label2id': {'label': '0'},\n"
        "    'problem_type': 'regression',\n"
        "}\n"
    ),
}


def assemble(library_tests: Path, harnesses: list[str], subpackages: list[str], stand_ins: dict) -> tuple[Path, list]:
    """Copies the library's top-level test files (and the named subpackages) and our harnesses into a temporary
    `tests` package; returns its parent folder and the stand-ins it had to write."""
    root = Path(tempfile.mkdtemp(prefix="univigu-mixins-"))
    package = root / "tests"
    package.mkdir()
    for path in library_tests.glob("*.py"):
        shutil.copy2(path, package / path.name)
    for name in subpackages:
        if (library_tests / name).is_dir():
            shutil.copytree(library_tests / name, package / name)
    (package / "__init__.py").touch()
    written = []
    for relative, text in stand_ins.items():
        target = package / relative
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            (target.parent / "__init__.py").touch()
            target.write_text(text)
            written.append(relative)
    for name in harnesses:
        shutil.copy2(HERE / name, package / f"test_univigu_{name}")
    return root, written


def run_pytest(root: Path, files: list[str], keyword: str | None) -> dict:
    """Runs pytest on the harness files inside the assembled package and counts the outcomes."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-rfEs",
        "-p",
        "no:cacheprovider",
        "-W",
        "ignore::pytest.PytestUnknownMarkWarning",
        "--rootdir",
        str(root),
    ]
    command += [str(root / "tests" / f"test_univigu_{name}") for name in files]
    if keyword:
        command += ["-k", keyword]
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        PYTHONPATH=os.pathsep.join([str(root), str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
    )
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    counts = {}
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    for number, outcome in re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)\b", summary):
        counts["error" if outcome.startswith("error") else outcome] = int(number)
    failures = [line for line in result.stdout.splitlines() if line.startswith(("FAILED", "ERROR", "SUBFAILED"))]
    # Our harnesses skip the checks that do not apply with a reason starting "not applicable"; the rest of the skips
    # are the mixins' own (no accelerator, optional packages, features the model does not declare).
    skip_reasons = {}
    for number, reason in re.findall(r"^SKIPPED \[(\d+)\] [^:]+:\d+: (.*)$", result.stdout, re.MULTILINE):
        skip_reasons[reason] = skip_reasons.get(reason, 0) + int(number)
    not_applicable = {reason: n for reason, n in skip_reasons.items() if reason.startswith("not applicable")}
    counts["not_applicable"] = sum(not_applicable.values())
    counts["skipped_by_the_mixin"] = counts.get("skipped", 0) - counts["not_applicable"]
    return {
        "counts": counts,
        "summary": summary,
        "failures": failures,
        "not_applicable": not_applicable,
        "skipped_by_the_mixin": {r: n for r, n in skip_reasons.items() if r not in not_applicable},
        "output": result.stdout[-20000:],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transformers-tests", type=Path, help="transformers' tests/ folder")
    parser.add_argument("--diffusers-tests", type=Path, help="diffusers' tests/ folder")
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("-k", dest="keyword", help="pytest -k expression")
    parser.add_argument("--verbose", action="store_true", help="print pytest's output")
    parser.add_argument("--keep", action="store_true", help="keep the assembled test packages")
    args = parser.parse_args(argv)
    if not args.transformers_tests and not args.diffusers_tests:
        parser.error("give --transformers-tests and/or --diffusers-tests")

    import importlib.util

    import diffusers
    import transformers

    if args.transformers_tests and importlib.util.find_spec("parameterized") is None:
        parser.error("transformers' common tests import `parameterized`: pip install parameterized")

    report = {"transformers": transformers.__version__, "diffusers": diffusers.__version__, "runs": {}}
    runs = []
    if args.transformers_tests:
        runs.append(
            (
                "transformers ModelTesterMixin + ConfigTester",
                args.transformers_tests,
                ["transformers_model_test.py"],
                ["exporters", "generation", "utils"],
                TRANSFORMERS_STAND_INS,
            )
        )
    if args.diffusers_tests:
        runs.append(
            (
                "diffusers PipelineTesterMixin + MemoryTesterMixin + the cache tester mixins",
                args.diffusers_tests,
                ["diffusers_pipeline_test.py"],
                ["pipelines", "models"],
                {},
            )
        )
        runs.append(
            (
                "diffusers SchedulerCommonTest",
                args.diffusers_tests,
                ["diffusers_scheduler_test.py"],
                ["schedulers", "others"],
                {},
            )
        )
    for name, folder, harnesses, subpackages, stand_ins in runs:
        folder = folder.resolve()
        if not folder.is_dir():
            parser.error(f"{folder} is not a folder")
        root, written = assemble(folder, harnesses, subpackages, stand_ins)
        try:
            result = run_pytest(root, harnesses, args.keyword)
        finally:
            if args.keep:
                print(f"kept {root}")
            else:
                shutil.rmtree(root, ignore_errors=True)
        result["stand_ins"] = written
        if args.verbose:
            print(result["output"])
        counts = result["counts"]
        print(
            f"{name}: {counts.get('passed', 0)} passed, {counts.get('failed', 0) + counts.get('error', 0)} failed, "
            f"{counts['not_applicable']} not applicable, {counts['skipped_by_the_mixin']} skipped by the mixin"
            + (f"  (stand-ins: {', '.join(written)})" if written else "")
        )
        for line in result["failures"]:
            print("  " + line)
        del result["output"]
        report["runs"][name] = result
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return (
        0
        if all(not r["counts"].get("failed") and not r["counts"].get("error") for r in report["runs"].values())
        else 1
    )


if __name__ == "__main__":
    sys.exit(main())
