# The two commands of the README: `make run` and `make test`. Each creates .venv if missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export ZENML_ANALYTICS_OPT_IN := false

.PHONY: setup run test clean

setup: $(STAMP)

# requirements.lock pins every transitive version that was installed and `pip check`ed together.
$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e '.[pipeline,test]'
	touch $(STAMP)

# The main job: materialise the dataset with DVC (offline, cached), then run the ZenML pipeline
# ingest -> validate -> build_supernet -> search -> finetune (+ vanilla) -> export_onnx ->
# evaluate -> promote on the offline default (EfficientNet-Lite0 ImageNet weights, photos task).
CONFIG ?= configs/default.yaml
run: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro
	$(PY) run.py --config $(CONFIG)

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
