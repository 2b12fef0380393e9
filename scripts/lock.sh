#!/usr/bin/env bash
# Resolve a dependency set in a scratch venv, run the test suite on it, and (in `lock` mode) write it to the lock.
#
#   scripts/lock.sh lock     newest releases that pyproject.toml admits -> tests -> requirements/lock.txt
#   scripts/lock.sh latest   the same resolution and tests; the lock is left as it is
#   scripts/lock.sh lowest   the lower bound of every direct dependency in pyproject.toml (torch held at $TORCH) -> tests
#
# The package is installed from its built wheel with pip's default resolver, exactly as `pip install univigu_hf`
# resolves it for a user. The lock is written only after the whole suite passed on that environment.
# Environment: PYTHON (python3), TORCH (torch==2.13.0), SCRATCH (.venv-lock), PYTEST_ARGS (extra pytest arguments).
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-}"
case "$mode" in
    lock | latest | lowest) ;;
    *)
        echo "usage: scripts/lock.sh lock|latest|lowest" >&2
        exit 2
        ;;
esac

PYTHON="${PYTHON:-python3}"
TORCH="${TORCH:-torch==2.13.0}"
SCRATCH="${SCRATCH:-.venv-lock}"
LOCK=requirements/lock.txt
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

rm -rf "$SCRATCH"
"$PYTHON" -m venv "$SCRATCH"
pip=("$SCRATCH/bin/python" -m pip --quiet --disable-pip-version-check)
"${pip[@]}" install --upgrade pip setuptools
# torch first: an unpinned torch pulled in by a dependency would be a CUDA build of several GB.
"${pip[@]}" install "$TORCH"

wheel_dir="$SCRATCH/wheel"
"$SCRATCH/bin/python" -m pip wheel --quiet --no-deps --no-build-isolation -w "$wheel_dir" .
wheel="$(ls "$wheel_dir"/univigu_hf-*.whl)"

constraints=()
if [ "$mode" = lowest ]; then
    "$SCRATCH/bin/python" scripts/lower_bounds.py > "$SCRATCH/lowest.txt"
    echo "lower bounds:" && sed 's/^/  /' "$SCRATCH/lowest.txt"
    constraints=(-c "$SCRATCH/lowest.txt")
fi
"${pip[@]}" install "${constraints[@]}" "${wheel}[dev]"
"${pip[@]}" check

# The candidate lock: what this venv holds. The suite checks it (tests/test_packaging.py reads UNIVIGU_LOCK_FILE).
candidate="$SCRATCH/lock.txt"
{
    echo "# The dependency set the test suite passed on; \`make install\` installs exactly this."
    echo "# Written by \`make lock\` (scripts/lock.sh) with $("$SCRATCH/bin/python" --version) on $(uname -sm)."
    echo "# torch is installed first from the Makefile's TORCH (default torch==2.13.0, the CPU build), so it is"
    echo "# not listed here; torch's own dependencies are."
    "$SCRATCH/bin/python" -m pip freeze --all --exclude-editable | grep -viE '^(torch|univigu[-_]hf)([=@ ]|$)' | sort -f
} > "$candidate"

# The suite runs on the source tree (pytest's pythonpath), with the scratch venv's dependencies.
UNIVIGU_LOCK_FILE="$candidate" "$SCRATCH/bin/python" -m pytest tests -q -p no:cacheprovider ${PYTEST_ARGS:-}

versions=(torch diffusers transformers peft trl accelerate datasets huggingface-hub)
echo "tested with:"
for name in "${versions[@]}"; do
    echo "  $name $("$SCRATCH/bin/python" -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p')"
done

if [ "$mode" = lock ]; then
    mkdir -p requirements
    mv "$candidate" "$LOCK"
    echo "wrote $LOCK ($(grep -vc '^#' "$LOCK") packages)"
fi
rm -rf "$SCRATCH"
