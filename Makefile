# DMSL Studio - `make run` starts the app on the built-in demo, `make test` runs the tests.
# Both bootstrap .venv when it is missing or older than pyproject.toml.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test venv bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU wheel of torch first (it lies on disk on our machines); pyproject's range accepts it.
	$(PY) -m pip install -q "torch==2.13.0" || $(PY) -m pip install -q "torch>=2.2,<3"
	$(PY) -m pip install -q -e ".[dev,dlib,onnx]"
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(PY) main.py

test: $(STAMP)
	$(PY) -m ruff check dmsl_core app tools tests main.py
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/dmsl bench

clean:
	rm -rf $(VENV) build *.egg-info
