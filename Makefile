# Two commands are all a fresh machine needs: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# llama-cpp-python compiles llama.cpp from source (about 5 minutes on 2 cores, cached by pip afterwards).
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: run test lint typecheck bench bundle screenshots clean

$(VENV)/.stamp-runtime: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip >/dev/null
	$(PIP) install -e .
	touch $@

$(VENV)/.stamp-dev: pyproject.toml $(VENV)/.stamp-runtime
	$(PIP) install -e '.[dev]'
	touch $@

# Checks that Qt's X11 plugin finds its system libraries (prints the apt-get line for any missing), prepares
# the demo model once (Gemma 3 270M from its PyPI package, no network) and opens the app on it.
run: $(VENV)/.stamp-runtime
	$(PY) -m medcal_gui.cli.setup_check
	$(VENV)/bin/medcal gui --model "$$($(VENV)/bin/medcal demo-model)"

test: $(VENV)/.stamp-dev
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q --timeout=900

lint: $(VENV)/.stamp-dev
	$(VENV)/bin/ruff check medcal_gui tests bench
	$(VENV)/bin/mypy medcal_gui

bench: $(VENV)/.stamp-dev
	$(PY) bench/bench_dataset.py

# The stand-alone one-folder bundle, dist/medcal/ (GUI and CLI in one program); see README "Stand-alone bundle".
# Check it with: dist/medcal/medcal --version && dist/medcal/medcal self-test
BUNDLE_DIST ?= dist
bundle: $(VENV)/.stamp-dev
	rm -rf $(BUNDLE_DIST)/medcal
	$(VENV)/bin/pyinstaller build_spec/medcal.spec --noconfirm --clean --log-level WARN \
		--distpath $(BUNDLE_DIST) --workpath build/pyinstaller
	@du -sh $(BUNDLE_DIST)/medcal

screenshots: $(VENV)/.stamp-runtime
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/medcal gui --screenshot docs/screenshots

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
