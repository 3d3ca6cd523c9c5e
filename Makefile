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

run: $(STAMP)
	$(VENV)/bin/archft space --base efficientnet_lite0 --scope small
	$(VENV)/bin/archft data --dataset digits --manifest runs/digits/manifest.json
	@echo "manifest written to runs/digits/manifest.json"

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
