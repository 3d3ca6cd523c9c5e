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

# The main job until the ZenML pipeline lands: both stages, the vanilla baseline, ONNX export
# and the comparison, on the offline default (digits + EfficientNet-Lite0 ImageNet weights).
RUN ?= runs/default
run: $(STAMP)
	$(VENV)/bin/archft search --base efficientnet_lite0 --weights imagenet --scope small \
		--dataset digits --strategy reinforce --budget 200 --seed 0 --resume --out $(RUN)/search
	$(VENV)/bin/archft finetune --architecture $(RUN)/search/architecture.json --dataset digits \
		--steps 300 --seed 0 --out $(RUN)/model
	$(VENV)/bin/archft finetune --architecture $(RUN)/search/architecture.json --dataset digits \
		--steps 300 --seed 0 --vanilla --out $(RUN)/vanilla
	$(VENV)/bin/archft export --model $(RUN)/model --dataset digits --out $(RUN)/export
	$(VENV)/bin/archft compare $(RUN)/model $(RUN)/vanilla --out $(RUN)
	@echo "results in $(RUN)/: search/ (architecture.json, action_heatmap.png, summary.json),"
	@echo "model/ and vanilla/ (weights, metrics.json, accuracy_curve.png), export/model.onnx,"
	@echo "compare.md"

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
