# make install: .venv with the project and its test tools; make train / make test run it first.
# make test also installs Debian's chromium and chromium-driver (for the explorer page's browser test).
# Python: python3.12 when present (jax 0.12 needs it), else python3 (>= 3.11).
# Under 3.12 the versions are constraints.txt's (jax 0.12.0.1, the recorded figures' jax).
PYTHON ?= $(shell for p in python3.12 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3.12 2>/dev/null) python3; do \
	$$p -c 'import sys; assert sys.version_info >= (3, 11)' >/dev/null 2>&1 && { command -v $$p; break; }; done)
VENV := .venv
INSTALLED := $(VENV)/.installed

.PHONY: install train test browser bench clean

install: $(INSTALLED)

$(INSTALLED): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "make: no Python >= 3.11 found; install python3.12 or pass PYTHON=/path/to/python3"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(INSTALLED)

train: install
	$(VENV)/bin/python train.py $(ARGS)

# --dist loadfile: each test file runs whole on one worker, so its module-scoped fixtures (the runs
# on 1/4/8 devices) are made once; interleaved with other files' tests they were made again.
# (--dist loadgroup does not group under pytest 9.2: pytest-xdist issue #1386.)
test: install browser
	$(VENV)/bin/python -m pytest -q -n auto --dist loadfile tests

# The browser is the system's, not one a test tool downloads: chromedriver matches it exactly.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		echo "make: installing Debian's chromium and chromium-driver for the explorer page test"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
			chromium chromium-driver >/dev/null; }

# Benchmarks beside PyTorch: torch 2.13.0 is a CPU build for Python 3.11 (other versions fetch CUDA
# builds of several GB), so this venv is Python 3.11 with the jax that Python 3.11 gets.
BENCH_PYTHON ?= python3.11
BENCH_VENV := .venv-bench
bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python benchmarks/step_time.py $(ARGS)

$(BENCH_VENV)/.installed: pyproject.toml
	$(BENCH_PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e . torch==2.13.0
	touch $@

clean:
	rm -rf $(VENV) $(BENCH_VENV) runs
