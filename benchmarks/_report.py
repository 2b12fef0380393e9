"""Shared output for the benchmark scripts: JSON on stdout and, optionally, in a file."""

import json
import os


def emit(results: dict, output: str | None) -> None:
    """Prints `results` as JSON and writes them to `output` (folders created) when given."""
    text = json.dumps(results, indent=2)
    print(text)
    if output:
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
