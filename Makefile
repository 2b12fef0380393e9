# univigu_hf — two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install test lint format demo train-demo train-demo-joint eval-demo bench bench-quick benchmark lock \
	test-latest test-lowest test-mixins clean

# The exact dependency set the suite passed on (`make lock` refreshes it): two installs on two days are the same.
LOCK := requirements/lock.txt

install: $(STAMP)

# Reinstall when the dependency list or the lock changes. torch comes first, from TORCH (the lock leaves it out so
# that TORCH= can choose another build); the package itself goes in without resolving anything.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$$(grep -i '^pip==' $(LOCK))"
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

# Resolve the newest releases pyproject.toml admits in a scratch venv, run the suite there, and only then write
# $(LOCK). test-latest does the same without writing; test-lowest installs every direct dependency at its lower
# bound. None of the three runs in CI (they need the package registry and take ~10 minutes each).
lock:
	PYTHON=$(PYTHON) TORCH="$(TORCH)" scripts/lock.sh lock

test-latest:
	PYTHON=$(PYTHON) TORCH="$(TORCH)" scripts/lock.sh latest

test-lowest:
	PYTHON=$(PYTHON) TORCH="$(TORCH)" scripts/lock.sh lowest

# The suite also covers int8 quantization, so it installs the `quantization` extra's locked torchao (not part of the
# plain install: diffusers imports torchao whenever it is there, and torchao prints warnings at that import on CPU).
test: install
	$(BIN)/python -m pip install --quiet -r requirements/quantization.txt
	$(BIN)/python -m pytest tests -q -p no:cacheprovider

# The libraries' own common test mixins on our classes (transformers ModelTesterMixin + ConfigTester, diffusers
# PipelineTesterMixin + MemoryTesterMixin + cache tester mixins + SchedulerCommonTest), read from their tests/ folders; see
# docs/architecture.md. Not in CI: it needs those checkouts and `pip install parameterized`.
TRANSFORMERS_TESTS ?= ../transformers/tests
DIFFUSERS_TESTS ?= ../diffusers/tests
test-mixins: install
	$(BIN)/python scripts/library_mixins/run.py --transformers-tests $(TRANSFORMERS_TESTS) \
		--diffusers-tests $(DIFFUSERS_TESTS) --json docs/results/library_mixins.json

lint: install
	$(BIN)/ruff check src tests examples benchmarks research scripts
	$(BIN)/ruff format --check src tests examples benchmarks research scripts

format: install
	$(BIN)/ruff check --fix src tests examples benchmarks research scripts
	$(BIN)/ruff format src tests examples benchmarks research scripts

demo: install
	$(BIN)/univigu demo

# The embedded default model, end to end (about 81 minutes on a 2-core CPU; see docs/shapes.md).
SHAPES_RUN ?= runs/shapes_world
ABLATION_RUN ?= runs/shapes_world_refine_only
train-demo: install
	$(BIN)/python examples/shapes_world/train_demo.py --work_dir $(SHAPES_RUN) --install

# Scores the default model on the held-out combinations -> docs/results/shapes.json. The ablation (Capability
# Refinement alone from the same base, same step budget) is trained first if missing; it needs `make train-demo`'s base.
eval-demo: install
	@test -d $(SHAPES_RUN)/base || (echo "eval-demo needs $(SHAPES_RUN)/base: run make train-demo first" && exit 1)
	test -d $(ABLATION_RUN)/pipeline || $(BIN)/python examples/shapes_world/train_demo.py --work_dir $(ABLATION_RUN) \
		--skip_recall --base_dir $(SHAPES_RUN)/base --data_dir $(SHAPES_RUN)/data/train
	$(BIN)/python examples/shapes_world/eval_demo.py --output docs/results/shapes.json \
		--ablation_model $(ABLATION_RUN)/pipeline

# The joint-attention variant of the default model (video_attends_text=True, the official default): Knowledge Recall +
# Capability Refinement from make train-demo's base with the same configs and step budget, for the opt-in approximate
# video cache. `python benchmarks/caption_cache_accuracy.py --model $(JOINT_RUN)/refine --steps 20` scores it (off vs
# approx refreshed never/every 10/5/2 steps).
JOINT_RUN ?= runs/shapes_world_joint
JOINT_ARGS = --dataset_name $(SHAPES_RUN)/data/train --prepared_data_dir $(SHAPES_RUN)/data/prepared --seed 0 \
	--video_attends_text true
train-demo-joint: install
	@test -d $(SHAPES_RUN)/base || (echo "train-demo-joint needs $(SHAPES_RUN)/base: run make train-demo first" && exit 1)
	$(BIN)/python examples/train_recall.py --config examples/shapes_world/configs/recall.yaml \
		--init_from $(SHAPES_RUN)/base --output_dir $(JOINT_RUN)/recall --max_steps 1500 $(JOINT_ARGS)
	$(BIN)/python examples/train_refine.py --config examples/shapes_world/configs/refine.yaml \
		--init_from $(JOINT_RUN)/recall --output_dir $(JOINT_RUN)/refine --max_steps 2600 $(JOINT_ARGS)

# Every benchmark (a few minutes on a 2-core CPU) -> docs/results/*.json, then a summary table (benchmarks/README.md).
bench: install
	$(BIN)/python benchmarks/run_all.py

# The same scripts with --quick (seconds each; the numbers mean nothing) -> outputs/bench-quick/.
bench-quick: install
	$(BIN)/python benchmarks/run_all.py --quick

benchmark: bench

clean:
	rm -rf $(VENV) .venv-lock build dist src/*.egg-info .pytest_cache .ruff_cache
