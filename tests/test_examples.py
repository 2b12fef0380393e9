import subprocess
import sys
from pathlib import Path

from transformers import AutoModel

from univigu_hf import UniViGUModel


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_grow_from_wan_tiny_example(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "grow_from_wan.py"),
            "--tiny",
            "--text-vocab-size",
            "40",
            "--output",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    model = AutoModel.from_pretrained(tmp_path)
    assert isinstance(model, UniViGUModel) and model.config.text_vocab_size == 40
