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
# Detectron2 main's source (development machines and CI only) and the folder its build is
# installed into for the suite's second run (put first on PYTHONPATH).
D2_MAIN_SOURCE ?= ../shared/detectron2-main
D2_MAIN_BUILD := $(abspath $(VENV))/detectron2-main
D2_MAIN_ENV := PYTHONPATH="$(D2_MAIN_BUILD)$${PYTHONPATH:+:$$PYTHONPATH}" ZOOMINNET_DETECTRON2_MAIN="$(D2_MAIN_BUILD)"
# Prints which Detectron2 a run imports (tests/test_detectron2_builds.py checks it).
WHICH_D2 := import zoominnet_d2, detectron2, sys; \
	c = not isinstance(sys.modules['detectron2._C'], zoominnet_d2.compat._MissingCompiledOps); \
	print('tests on detectron2', detectron2.__version__, 'at', detectron2.__file__, '(compiled ops: %s)' % ('yes' if c else 'no'))

.PHONY: setup demo test test-default test-detectron2-main clean-demo

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

# The suite on the default install and, where its source is, on a build of Detectron2 main:
# side by side (each run mostly keeps one core busy), each run's output printed when it ends.
test: setup
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-default test-detectron2-main

test-default: setup
	@$(VPY) -c "$(WHICH_D2)"
	$(VPY) -m pytest -q tests

test-detectron2-main: setup
ifeq ($(wildcard $(D2_MAIN_SOURCE)),)
	@echo "$(D2_MAIN_SOURCE) is absent (it is on development machines and in CI only): no run on Detectron2 main"
else
	$(VPY) tools/install_detectron2_main.py --source $(D2_MAIN_SOURCE) --target $(D2_MAIN_BUILD)
	@$(D2_MAIN_ENV) $(VPY) -c "$(WHICH_D2)"
	$(D2_MAIN_ENV) $(VPY) -m pytest -q tests
endif

clean-demo:
	rm -rf demo_output
