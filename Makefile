# Two commands for users: `make demo` (the main job) and `make test` (the suite).
# Both run `make setup` first, which is idempotent.
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
# torch for a fresh venv; a torch already importable in the venv is kept as is.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.zoominnet-setup
# Extra options for tools/demo.py, e.g. DEMO_ARGS=--force to redo finished stages.
DEMO_ARGS ?=

.PHONY: setup demo test clean-demo

setup: $(STAMP)

$(STAMP): setup.py tools/install_detectron2.py
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip setuptools wheel
	$(VPY) -c "import torch, torchvision" 2>/dev/null || $(VPY) -m pip install $(TORCH_SPEC)
	$(VPY) tools/install_detectron2.py
	$(VPY) -m pip install --quiet --no-build-isolation -e ".[dev]"
	$(VPY) -c "import zoominnet_d2, detectron2; print('setup ok: detectron2', detectron2.__version__)"
	touch $(STAMP)

demo: setup
	$(VPY) tools/demo.py $(DEMO_ARGS)

test: setup
	$(VPY) -m pytest -q tests

clean-demo:
	rm -rf demo_output
