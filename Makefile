# The two commands of the README: `make run` and `make test`. Each creates .venv if missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export ZENML_ANALYTICS_OPT_IN := false

.PHONY: setup run test clean kfp kubeflow-image kubeflow-stack

setup: $(STAMP)

# requirements.lock pins every transitive version that was installed and `pip check`ed together.
# pip byte-compiles what it installs on one core; compileall does it on all of them (2 cores:
# 164 s -> 84 + 50 s). Only one installed file does not compile: a torch test module in Python
# 3.12 syntax, never imported here.
$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile -c requirements.lock -e '.[pipeline,test]'
	$(PY) -m compileall -q -j 0 -x py312_intrinsics $$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
	touch $(STAMP)

# The main job: materialise the dataset with DVC (offline, cached), then run the ZenML pipeline
# ingest -> validate -> build_supernet -> search -> finetune (+ vanilla) -> export_onnx ->
# evaluate -> promote on the offline default (EfficientNet-Lite0 ImageNet weights, textures task).
CONFIG ?= configs/default.yaml
run: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro
	$(PY) run.py --config $(CONFIG)

test: $(STAMP)
	$(PY) -m pytest -q

# Kubeflow (README, "Running on Kubeflow"). `make kfp` needs no cluster: the compiled KFP YAML of
# configs/kubeflow.yaml. The image tag must match settings.docker.parent_image of that config.
REGISTRY ?= localhost:5000
IMAGE ?= $(REGISTRY)/archft-step:0.1.0
kfp: $(STAMP)
	$(PY) run.py --config configs/kubeflow.yaml --compile-only runs/kubeflow/pipeline.yaml

kubeflow-image:
	docker build -f k8s/Dockerfile -t $(IMAGE) .
	docker push $(IMAGE)

# Variables: KUBEFLOW_HOST REGISTRY ARTIFACT_PATH S3_ENDPOINT AWS_ACCESS_KEY_ID
# AWS_SECRET_ACCESS_KEY NAMESPACE (k8s/stack.sh says what each is).
kubeflow-stack: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" REGISTRY=$(REGISTRY) k8s/stack.sh

clean:
	rm -rf $(VENV) runs .pytest_cache
