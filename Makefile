# `make run` creates .venv, installs grokmuon and trains Muon on modadd; `make test` runs the tests.
# torch: installed as $(TORCH_SPEC) only when .venv has no torch yet. On a GPU machine, put your own
# CUDA build of torch into .venv first (or set TORCH_SPEC) and it is left alone.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
ARGS ?=
# Tests run in parallel (pytest-xdist), one worker per CPU this process may use: `nproc` honours taskset
# and cpusets (but would report OMP_NUM_THREADS, which this project sets to 1, hence env -u), while
# `-n auto` counts physical cores where psutil is installed (1 on a 2-vCPU machine). One CPU runs in
# process (-n 0), with no worker to start. Set JOBS to choose; ARGS come last and win (`make test
# ARGS="-n 0"` runs serially). --dist loadgroup keeps the tests marked with one xdist_group on one
# worker, so the module-scoped fixture they share (a training run) runs once (tests/README.md).
JOBS ?= $(shell env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
XDIST = -n $(if $(filter 1,$(JOBS)),0,$(JOBS)) --dist loadgroup

.PHONY: install run test test-all smoke bench clean
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

run: install
	$(BIN)/grokmuon train optimizer=muon task=modadd $(ARGS)

test: install
	$(BIN)/python -m pytest -q $(XDIST) $(ARGS)

test-all: install
	$(BIN)/python -m pytest -q -m "" $(XDIST) $(ARGS)

bench: install
	$(BIN)/grokmuon bench $(ARGS)

# The whole pipeline end to end in seconds (experiment=smoke: tiny model, 20 epochs, nothing groks), into
# scratch folders that git ignores and `make clean` removes; run again, it skips the complete cells. The
# report's markdown is long, so it goes to its file only.
smoke: install
	$(BIN)/grokmuon train -m experiment=smoke
	$(BIN)/grokmuon collect multirun/smoke --name smoke
	$(BIN)/grokmuon report --runs results/smoke/runs.csv > /dev/null
	@echo "written: results/smoke/report.md"
	$(BIN)/grokmuon figures --runs results/smoke/runs.csv

# Only what a build or a scratch run makes, all of it ignored by git; never a tracked file: multirun/ and
# results/ hold the committed sweeps (tests/test_repo.py runs this in a scratch clone and checks).
clean:
	rm -rf $(VENV) build dist grokmuon.egg-info outputs wandb .pytest_cache multirun/smoke results/smoke
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
