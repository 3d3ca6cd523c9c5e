"""Kubeflow: the real pipeline compiled offline with configs/kubeflow.yaml (real ZenML, real
kfp compiler and kfp-kubernetes), the stock orchestrator's bug A, the stack script against a
real ZenML store, and the step image's and the Katib trial's consistency with the code.

No Kubernetes runs here: the checks are on the compiled KFP spec. kubectl is the one thing
replaced (by a script that records its calls) in the stack-script test.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.kubeflow import (
    GPU_RESOURCE,
    SECRET_NAME,
    memory_quantity,
    split_environment,
)

ROOT = Path(__file__).resolve().parents[1]
KUBEFLOW = yaml.safe_load((ROOT / "configs" / "kubeflow.yaml").read_text())
SMOKE = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
GPU_STEPS = {"search", "finetune", "vanilla_baseline"}
UPSTREAM = {"ingest": set(), "validate": {"ingest"}, "build_supernet": {"ingest", "validate"},
            "search": {"build_supernet", "ingest"}, "finetune": {"ingest", "search"},
            "vanilla_baseline": {"build_supernet", "ingest"},
            "select_model": {"finetune", "vanilla_baseline"},
            "export_onnx": {"select_model", "ingest"},
            "evaluate": {"export_onnx", "select_model", "finetune", "ingest", "search",
                         "vanilla_baseline"},
            "model_card": {"evaluate", "search", "build_supernet"},
            "promote": {"evaluate"}}
# Credentials a user's config might carry into the steps' environment: they must reach the
# pods through the Kubernetes secret, never as text in the YAML.
PLANTED = {"ZENML_STORE_API_KEY": "ZENKEY_planted-api-key-4711",
           "AWS_SECRET_ACCESS_KEY": "planted-aws-secret-0815"}


def _env(tmp: Path) -> dict:
    return {**os.environ, "ZENML_CONFIG_PATH": str(tmp / "zenml"),
            "ZENML_ANALYTICS_OPT_IN": "false", "ZENML_LOGGING_COLORS_DISABLED": "true"}


def _kebab(step: str) -> str:
    return step.replace("_", "-")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> tuple[dict, dict, str]:
    """configs/kubeflow.yaml with the smoke parameters, compiled by `run.py --compile-only`."""
    tmp = tmp_path_factory.mktemp("kfp")
    config = {**copy.deepcopy(KUBEFLOW), "parameters": SMOKE["parameters"],
              "environment": PLANTED}
    path = tmp / "kubeflow-smoke.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp / "pipeline.yaml"
    proc = subprocess.run([sys.executable, "run.py", "--config", str(path), "--compile-only",
                           str(out)], cwd=ROOT, env=_env(tmp), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"to {out}" in proc.stdout
    text = out.read_text()
    spec, platform = yaml.safe_load_all(text)
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"], text


def test_all_steps_with_their_dependencies(compiled):
    spec, _, _ = compiled
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {_kebab(s) for s in UPSTREAM}
    for step, upstream in UPSTREAM.items():
        task = tasks[_kebab(step)]
        assert set(task.get("dependentTasks", [])) == {_kebab(u) for u in upstream}, step
        assert task["taskInfo"]["name"] == step
        assert task["cachingOptions"] == {"enableCache": True}, step


def test_image_entrypoint_and_resources(compiled):
    spec, _, _ = compiled
    executors = spec["deploymentSpec"]["executors"]
    assert set(executors) == {f"exec-{_kebab(s)}" for s in UPSTREAM}
    for step in UPSTREAM:
        c = executors[f"exec-{_kebab(step)}"]["container"]
        assert c["image"] == KUBEFLOW["settings"]["docker"]["parent_image"]
        assert c["command"] == ["python", "-m", "zenml.entrypoints.entrypoint"]
        assert c["args"][c["args"].index("--step_name") + 1] == step
        r = c["resources"]
        if step in GPU_STEPS:
            assert r["accelerator"]["resourceType"] == GPU_RESOURCE
            assert r["accelerator"]["resourceCount"] == "1"
            assert r["resourceCpuRequest"] == "4" and r["resourceMemoryLimit"] == "15259Mi"
        else:  # CPU only, modest: 1 CPU and 2 GB (1907 MiB), requested and limited
            assert "accelerator" not in r, step
            assert r["resourceCpuRequest"] == r["resourceCpuLimit"] == "1"
            assert r["resourceMemoryRequest"] == r["resourceMemoryLimit"] == "1907Mi"


def test_gpu_node_selector_tolerations_and_checkpoint_volume(compiled):
    spec, platform, _ = compiled
    gpu = KUBEFLOW["steps"]["search"]["settings"]["orchestrator"]
    for step in UPSTREAM:
        k8s = platform[f"exec-{_kebab(step)}"]
        if step in GPU_STEPS:
            assert k8s["nodeSelector"]["labels"] == gpu["node_selectors"]
            assert [{k: t[k] for k in ("key", "operator", "effect")}
                    for t in k8s["tolerations"]] == gpu["tolerations"]
        else:
            assert "nodeSelector" not in k8s and "tolerations" not in k8s, step
    # the search checkpoints on a PVC, where ARCHFT_WORK points: a restarted pod resumes
    (mount,) = platform["exec-search"]["pvcMount"]
    assert mount["constant"] == "archft-work"
    env = {e["name"]: e["value"] for e in
           spec["deploymentSpec"]["executors"]["exec-search"]["container"]["env"]}
    assert env["ARCHFT_WORK"] == mount["mountPath"]
    assert all("pvcMount" not in platform[f"exec-{_kebab(s)}"] for s in UPSTREAM
               if s != "search")


def test_no_credentials_in_the_yaml(compiled):
    spec, platform, text = compiled
    for value in PLANTED.values():
        assert value not in text
    for step in UPSTREAM:
        env = spec["deploymentSpec"]["executors"][f"exec-{_kebab(step)}"]["container"]["env"]
        names = {e["name"] for e in env}
        assert not {n for n in names if SECRET_NAME.search(n)}, step
        assert "ZENML_STORE_URL" in names  # what a step needs to reach the store stays
        (secret,) = platform[f"exec-{_kebab(step)}"]["secretAsEnv"]
        assert secret["secretName"] == KUBEFLOW["settings"]["orchestrator"]["store_secret"]
        assert {m["envVar"]: m["secretKey"] for m in secret["keyToEnv"]} == {
            k: k for k in PLANTED}


def test_stock_orchestrator_still_has_bug_a(tmp_path):
    """ZenML's own Kubeflow orchestrator cannot compile a pipeline with dependencies against
    kfp 2.17 (`.after()` gets components, not tasks). When this fails, ZenML fixed it: shrink
    pipelines/kubeflow.py."""
    config = {"parameters": SMOKE["parameters"],
              "settings": {"docker": KUBEFLOW["settings"]["docker"]}}
    path = tmp_path / "stock.yaml"
    path.write_text(yaml.safe_dump(config))
    code = ("from pipelines.kubeflow import compile_offline; "
            f"compile_offline({str(path)!r}, None, flavor='kubeflow')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(tmp_path),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "PipelineTask.after() only supports PipelineTask" in proc.stderr, proc.stderr[-2000:]
    assert "Got ContainerComponent" in proc.stderr


@pytest.mark.parametrize("memory,quantity", [("2GB", "1907Mi"), ("512MiB", "512Mi"),
                                             ("16GB", "15259Mi"), (None, None)])
def test_memory_is_a_kubernetes_quantity(memory, quantity):
    from zenml.config import ResourceSettings

    assert memory_quantity(ResourceSettings(memory=memory)) == quantity


def test_secret_names_are_split_from_the_environment():
    env = {"ZENML_STORE_URL": "https://zenml.example.com", "ZENML_STORE_API_KEY": "k",
           "ZENML_STORE_API_TOKEN": "t", "ZENML_STORE_PASSWORD": "p", "AWS_SECRET_ACCESS_KEY": "s",
           "ZENML_SECRETS_STORE_TYPE": "sql", "ZENML_DISABLE_CREDENTIALS_DISK_CACHING": "true",
           "ARCHFT_WORK": "/mnt/archft-work"}
    plain, secret = split_environment(env)
    assert secret == ["AWS_SECRET_ACCESS_KEY", "ZENML_STORE_API_KEY", "ZENML_STORE_API_TOKEN",
                      "ZENML_STORE_PASSWORD"]
    assert set(plain) == {"ZENML_STORE_URL", "ZENML_SECRETS_STORE_TYPE",
                          "ZENML_DISABLE_CREDENTIALS_DISK_CACHING", "ARCHFT_WORK"}


def test_image_tags_and_torch_match_the_code():
    dockerfile = (ROOT / "k8s" / "Dockerfile").read_text()
    torch_arg = re.search(r"^ARG TORCH=(\S+)$", dockerfile, re.M)[1]
    lock = (ROOT / "requirements.lock").read_text()
    assert re.search(r"^torch==(\S+)$", lock, re.M)[1] == torch_arg
    image = KUBEFLOW["settings"]["docker"]["parent_image"]
    makefile = (ROOT / "Makefile").read_text()
    assert image.split("/", 1)[1] == re.search(r"^IMAGE \?= \$\(REGISTRY\)/(\S+)$", makefile,
                                               re.M)[1]
    katib = yaml.safe_load((ROOT / "k8s" / "katib-experiment.yaml").read_text())
    (container,) = katib["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"][
        "containers"]
    assert container["image"] == image


def test_katib_trial_is_a_valid_archft_search():
    from archft.cli import SEARCH_METRICS, TRIAL_METRIC, build_parser, search_run_config
    from archft.runconfig import load_run_config

    katib = yaml.safe_load((ROOT / "k8s" / "katib-experiment.yaml").read_text())["spec"]
    objective = katib["objective"]
    # The trial is tuned on its pick's fine-tuned validation accuracy, which `archft search`
    # prints only when it also fine-tunes (--then-finetune); the other names it always prints.
    assert objective["objectiveMetricName"] == TRIAL_METRIC
    assert set(objective["additionalMetricNames"]) <= set(SEARCH_METRICS)
    template = katib["trialTemplate"]
    (container,) = template["trialSpec"]["spec"]["template"]["spec"]["containers"]
    assert container["name"] == template["primaryContainerName"]
    feasible = {p["name"]: p["feasibleSpace"]["min"] for p in katib["parameters"]}
    values = {t["name"]: feasible[t["reference"]] for t in template["trialParameters"]}
    argv = [re.sub(r"\$\{trialParameters\.(\w+)\}", lambda m: values[m[1]], a)
            for a in container["command"]]
    assert argv[:2] == ["archft", "search"]
    args = build_parser().parse_args(argv[1:])  # exits (SystemExit) on an unknown flag
    assert args.then_finetune and args.then_finetune != args.out
    # The image's WORKDIR is /app (k8s/Dockerfile), where the repository's configs/ is copied.
    assert args.config.startswith("/app/configs/")
    args.config = str(ROOT / args.config.removeprefix("/app/"))
    trial = search_run_config(args)  # the file, then the flags, as `archft search` builds it
    assert trial.search.controller_lr == float(feasible["controller_lr"])
    assert trial.search.warmup == float(feasible["warmup"])
    # Apart from the tuned fields, a trial searches what the Kubeflow pipeline searches.
    pipeline = load_run_config(ROOT / "configs" / "kubeflow.yaml")
    assert (trial.data, trial.space) == (pipeline.data, pipeline.space)
    tuned = {"controller_lr": pipeline.search.controller_lr, "warmup": pipeline.search.warmup}
    assert dataclasses.replace(trial.search, **tuned) == pipeline.search
    assert trial.finetune == pipeline.finetune  # and fine-tunes its pick as the pipeline does


def test_default_task_and_search_agree_across_local_dvc_and_kubeflow():
    """The default task's sizing lives in params.yaml (DVC), configs/kubeflow.yaml (built in
    the ingest pod) and configs/default.yaml (the folder DVC writes): one changed alone would
    run the local and the cluster default on different data or with a different search."""
    from archft.data import DataConfig
    from archft.runconfig import load_run_config

    params = yaml.safe_load((ROOT / "params.yaml").read_text())["data"]
    local = load_run_config(ROOT / "configs" / "default.yaml")
    cluster = load_run_config(ROOT / "configs" / "kubeflow.yaml")
    sizing = {k.replace("-", "_"): tuple(v) for k, v in params["sizing"].items()}
    assert cluster.data == DataConfig(params["source"], params["image_size"],
                                      seed=params["seed"], **sizing)
    assert local.data.source == f"imagefolder:data/{params['name']}"
    assert local.data.image_size == cluster.data.image_size
    assert local.space == cluster.space
    for section in ("search", "finetune"):  # the cluster's only difference: device auto
        assert dataclasses.replace(getattr(cluster, section), device="auto") == \
            dataclasses.replace(getattr(local, section), device="auto"), section
    assert local.vanilla == cluster.vanilla


# Records its calls, and the content of a --from-env-file (the script removes it after).
KUBECTL = """#!/bin/sh
echo "kubectl $*" >> "$KUBECTL_LOG"
for a in "$@"; do
  case "$a" in
    --from-env-file=*) echo "env-file: $(cat "${a#--from-env-file=}")" >> "$KUBECTL_LOG";;
  esac
done
"""


def test_stack_script_registers_the_stack_and_keeps_credentials_off_command_lines(tmp_path):
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(KUBECTL)
    kubectl.chmod(0o755)
    log = tmp_path / "kubectl.log"
    env = {**_env(tmp_path), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "KUBECTL": str(kubectl), "KUBECTL_LOG": str(log), "NAMESPACE": "team-a",
           "KUBEFLOW_HOST": "https://kubeflow.example.com/pipeline",
           "REGISTRY": "registry.example.com/ml", "ARTIFACT_PATH": "s3://archft-artifacts",
           "S3_ENDPOINT": "http://minio.example.com:9000", "AWS_ACCESS_KEY_ID": "minio",
           "AWS_SECRET_ACCESS_KEY": PLANTED["AWS_SECRET_ACCESS_KEY"]}
    for host in ("https://kubeflow.example.com/pipeline", "https://kfp.example.org"):
        env["KUBEFLOW_HOST"] = host  # the second run updates what the first registered
        proc = subprocess.run(["k8s/stack.sh"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    code = """
import json
from zenml.client import Client
s = Client().active_stack_model
print(json.dumps({k: [c.flavor_name, c.configuration] for k, cs in s.components.items()
                  for c in cs}))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    components = json.loads(proc.stdout.strip().splitlines()[-1])
    flavor, orchestrator = components["orchestrator"]
    assert flavor == "archft_kubeflow"
    assert orchestrator["kubeflow_hostname"] == "https://kfp.example.org"
    assert orchestrator["user_namespace"] == "team-a"
    assert components["artifact_store"][0] == "s3"
    assert components["artifact_store"][1]["path"] == "s3://archft-artifacts"
    assert components["container_registry"][1]["uri"] == "registry.example.com/ml"
    assert components["image_builder"][0] == "local"
    lines = log.read_text().splitlines()
    calls = [line for line in lines if line.startswith("kubectl ")]
    keys = [line.split(": ", 1)[1] for line in lines if line.startswith("env-file: ")]
    # each run: a fresh service-account key into the store secret, from a file, and the PVC
    assert len(keys) == 2 and all(k.startswith("ZENML_STORE_API_KEY=ZENKEY_") for k in keys)
    creates = [shlex.split(c) for c in calls if " create secret generic " in c]
    assert len(creates) == 2 and all(c[2:4] == ["team-a", "create"] for c in creates)
    assert sum(c == "kubectl -n team-a apply -f k8s/pvc.yaml" for c in calls) == 2
    text = "\n".join(calls)  # no credential on a command line
    assert PLANTED["AWS_SECRET_ACCESS_KEY"] not in text and "ZENKEY_" not in text


class _RecordingKFPClient:
    """Stands in for the KFP API server, which cannot run here: records what a run is created
    with."""

    def __init__(self):
        self.calls = []

    def create_run_from_pipeline_package(self, path, **kwargs):
        self.calls.append(("run", kwargs))

    def create_recurring_run(self, **kwargs):
        self.calls.append(("recurring", kwargs))

    def list_runs(self):
        return "runs"


@pytest.mark.parametrize("caching,sent", [(True, None), (False, False)])
def test_uploaded_runs_keep_the_compiled_caching(caching, sent):
    """The stock upload passes enable_caching=False, which would override every task's
    compiled caching option; the client our orchestrator hands it passes None (use the YAML's)
    unless caching is switched off."""
    from pipelines.kubeflow import _CachingClient

    inner = _RecordingKFPClient()
    client = _CachingClient(inner, caching)
    client.create_run_from_pipeline_package("p.yaml", run_name="r", enable_caching=False)
    client.create_recurring_run(job_name="j", enable_caching=False)
    assert [(kind, kw["enable_caching"]) for kind, kw in inner.calls] == [("run", sent),
                                                                        ("recurring", sent)]
    assert client.list_runs() == "runs"  # everything else goes straight through
