"""Stage 2, ONNX export and comparison on digits with the offline Lite0 weights (CPU)."""

import json
import re
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort
import pytest
import torch

from archft.core.errors import ArchitectureError, ConfigError
from archft.data import DataConfig, load_dataset
from archft.export import (
    compare,
    paired_summary,
    paired_test,
    preprocess,
    read_preprocessing,
    render,
    run_export,
    steps_to_reach,
)
from archft.export.onnx import _median_ms
from archft.finetune import FinetuneConfig, load_model, run_finetune
from archft.search import SearchConfig, run_search
from archft.search.earlystop import EarlyStopConfig
from archft.space import Architecture, SearchSpace

DATA = DataConfig("digits", image_size=32)
FT = dict(steps=30, eval_every=10, progress=False)


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DATA)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, digits):
    root = tmp_path_factory.mktemp("runs")
    space = SearchSpace.from_base("efficientnet_lite0", "small", weights="imagenet",
                                  num_classes=10)
    run_search(space, digits, DATA, SearchConfig(budget=6, controller_steps=1, progress=False,
                                                 early_stop=EarlyStopConfig(enabled=False)),
               root / "search")
    arch = Architecture.load(root / "search" / "architecture.json")
    out = {"root": root}
    for name, kw in {"two": {}, "vanilla": {"vanilla": True},
                     "inherit": {"init": "supernet"}}.items():
        out[name] = run_finetune(arch, digits, DATA, FinetuneConfig(**FT, **kw), root / name,
                                 search_dir=root / "search")
    return out


def test_model_directories_are_comparable(runs):
    keys = set(runs["two"])
    for name in ("two", "vanilla", "inherit"):
        m = runs[name]
        assert set(m) == keys
        assert [p["step"] for p in m["curve"]] == [0, 10, 20, 30]
        assert 0.5 < m["test_accuracy"] <= 1 and m["val_accuracy"] > 0.5
        d = runs["root"] / name
        assert {p.name for p in d.iterdir()} == {"architecture.json", "weights.safetensors",
                                                 "metrics.json", "accuracy_curve.png"}
    assert runs["vanilla"]["kind"] == "vanilla" and runs["vanilla"]["architecture"] == ["k3_e6"]
    assert runs["two"]["kind"] == "two-stage" and runs["inherit"]["init"] == "supernet"
    # Same scope, same budget: the same parameters are trained.
    assert runs["two"]["finetune_steps"] == runs["vanilla"]["finetune_steps"]


def test_frozen_prefix_is_untouched_and_model_reloads(runs, digits):
    from archft.engine import ScopedEvaluator
    from archft.models import build_base

    net, arch, metrics = load_model(runs["root"] / "two")
    base = build_base("efficientnet_lite0", "imagenet", 10)
    assert torch.equal(net.blocks[14].dw.conv.weight, base.blocks[14].dw.conv.weight)
    assert torch.equal(net.stem.bn.running_mean, base.stem.bn.running_mean)
    assert not torch.equal(net.classifier.weight, base.classifier.weight)
    from archft.data.loaders import BatchTransform

    pre = arch.space.spec.preprocessing
    ev = ScopedEvaluator(net, arch.space.spec, arch.space.trainable,
                         digits.split_images("test"), digits.labels("test"),
                         BatchTransform(32, pre.mean, pre.std), torch.device("cpu"))
    assert ev.accuracy(net) == metrics["test_accuracy"]


def test_onnx_reproduces_torch_with_metadata_only(runs, digits, tmp_path):
    report = run_export(runs["root"] / "two", digits, DATA, tmp_path, latency_repeats=3)
    assert abs(report["onnx_test_accuracy"] - report["test_accuracy"]) <= 0.001
    assert report["test_accuracy"] == runs["two"]["test_accuracy"]
    assert report["onnx_top1_agreement"] >= 0.999 and report["onnx_max_logit_difference"] < 1e-3
    assert set(report["latency"]) == {"onnxruntime_batch1_ms", "torch_batch1_ms",
                                      "onnxruntime_batch64_ms", "torch_batch64_ms"}
    # A client with nothing but onnxruntime, numpy and the metadata.
    sess = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    pre, classes = read_preprocessing(sess)
    assert classes == [str(i) for i in range(10)] and pre["size"] == [32, 32]
    images = digits.split_images("test").permute(0, 2, 3, 1).numpy()
    for batch in (1, 7):  # dynamic batch axis
        logits = sess.run(None, {"input": preprocess(images[:batch], pre)})[0]
        assert logits.shape == (batch, 10)
    preds = np.concatenate([sess.run(None, {"input": preprocess(images[i:i + 100], pre)})[0]
                            for i in range(0, len(images), 100)]).argmax(1)
    acc = float((preds == digits.labels("test").numpy()).mean())
    assert abs(acc - runs["two"]["test_accuracy"]) <= 0.001
    assert json.loads((tmp_path / "onnx_report.json").read_text()) == report


def test_latency_runs_fewer_repeats_only_when_they_are_slow():
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.05)

    assert _median_ms(slow, repeats=20, seconds=0.1) >= 50
    assert len(calls) == 1 + 5  # a warm-up, then the least count: the budget was spent
    calls.clear()
    _median_ms(lambda: calls.append(1), repeats=20, seconds=10)
    assert len(calls) == 1 + 20  # fast: every repeat


def test_export_refuses_another_dataset(runs, tmp_path):
    other = DataConfig("digits", image_size=48)
    with pytest.raises(ConfigError, match="trained at 32 px, not 48"):
        run_export(runs["root"] / "two", load_dataset(other), other, tmp_path)
    metrics = json.loads((runs["root"] / "two" / "metrics.json").read_text())
    copy = tmp_path / "renamed"
    copy.mkdir()
    for name in ("architecture.json", "weights.safetensors"):
        (copy / name).write_bytes((runs["root"] / "two" / name).read_bytes())
    (copy / "metrics.json").write_text(json.dumps({**metrics, "classes": list("abcdefghij")}))
    with pytest.raises(ConfigError, match="trained on classes"):
        run_export(copy, load_dataset(DATA), DATA, tmp_path / "x")


def test_compare(runs):
    result = compare(runs["root"] / "two", runs["root"] / "vanilla")
    target = min(runs["two"]["test_accuracy"], runs["vanilla"]["test_accuracy"])
    assert result["target"] == target
    a = steps_to_reach(runs["two"]["curve"], target)
    b = steps_to_reach(runs["vanilla"]["curve"], target)
    assert result["compute_ratio"] == a / b
    assert "compute ratio A/B" in render(result)
    with pytest.raises(ConfigError, match="not a model directory"):
        compare(runs["root"] / "search", runs["root"] / "two")


def test_supernet_init_needs_the_search_weights(runs, digits, tmp_path):
    arch = Architecture.load(runs["root"] / "search" / "architecture.json")
    with pytest.raises(ConfigError, match="supernet.safetensors"):
        run_finetune(arch, digits, DATA, FinetuneConfig(**FT, init="supernet"), tmp_path / "m",
                     search_dir=tmp_path)
    with pytest.raises(ConfigError, match="unknown init"):
        FinetuneConfig(init="scratch")


def test_learning_rate_sweep_keeps_the_best_on_validation(runs, digits, tmp_path):
    """`lr` as a list: one fine-tuning per rate from the same start, each exactly the
    single-rate fine-tuning, and the model of the best validation accuracy is the one kept."""
    arch = Architecture.load(runs["root"] / "search" / "architecture.json")
    single = {0.05: runs["two"], 0.01: run_finetune(arch, digits, DATA,
                                                     FinetuneConfig(**FT, lr=0.01), tmp_path / "s")}
    # 3.0 diverges; 0.01 runs after it, so it only matches if the start was restored
    m = run_finetune(arch, digits, DATA, FinetuneConfig(**FT, lr=[0.05, 3.0, 0.01]),
                     tmp_path / "sweep")
    sweep = {p["lr"]: p for p in m["lr_sweep"]}
    assert list(sweep) == [0.05, 3.0, 0.01]
    for lr, one in single.items():
        assert (sweep[lr]["val_accuracy"], sweep[lr]["test_accuracy"]) == (
            one["val_accuracy"], one["test_accuracy"]), lr
        assert one["lr"] == lr and one["lr_sweep"] is None
    assert sweep[3.0]["val_accuracy"] < max(sweep[0.05]["val_accuracy"],
                                            sweep[0.01]["val_accuracy"])
    best = max(m["lr_sweep"], key=lambda p: p["val_accuracy"])["lr"]  # first on a tie
    assert m["lr"] == best and m["val_accuracy"] == sweep[best]["val_accuracy"]
    assert m["test_accuracy"] == single[best]["test_accuracy"]
    # per-image results of the kept model, for paired tests: the same logits as test_accuracy
    assert m["test_correct"] == single[best]["test_correct"]
    assert len(m["test_correct"]) == len(digits.indices("test"))
    assert sum(m["test_correct"]) / len(m["test_correct"]) == pytest.approx(m["test_accuracy"])
    kept = load_model(tmp_path / "sweep")[0].state_dict()
    alone = load_model(runs["root"] / "two" if best == 0.05 else tmp_path / "s")[0].state_dict()
    assert all(torch.equal(kept[k], alone[k]) for k in alone)
    assert m["config"]["lr"] == (0.05, 3.0, 0.01)
    with pytest.raises(ConfigError, match="'lr' must be a positive number or a list"):
        FinetuneConfig.from_dict({"lr": [0.05, 0.05]})


def test_paired_test_of_two_models_on_one_test_set():
    # 100 images: A alone right on 10, B alone on 2, both on 80, neither on 8
    a = [1] * 10 + [0] * 2 + [1] * 80 + [0] * 8
    b = [0] * 10 + [1] * 2 + [1] * 80 + [0] * 8
    t = paired_test(a, b)
    assert (t["images"], t["a_only"], t["b_only"]) == (100, 10, 2)
    assert t["difference"] == pytest.approx(0.08)
    assert t["mcnemar_p"] == pytest.approx(2 * (1 + 12 + 66) / 2 ** 12)  # exact binomial
    half = 1.959964 * (12 - 8 ** 2 / 100) ** 0.5 / 100
    assert t["ci95"] == pytest.approx([0.08 - half, 0.08 + half])
    assert paired_test(b, a)["difference"] == pytest.approx(-0.08)
    assert paired_test(b, a)["mcnemar_p"] == t["mcnemar_p"]
    same = paired_test(a, a)
    assert (same["difference"], same["ci95"], same["mcnemar_p"]) == (0, [0, 0], 1)
    # many disagreements: exact in integers, no underflow to nonsense
    big = paired_test([1] * 3000 + [0] * 2000, [0] * 3000 + [1] * 2000)
    assert 0 < big["mcnemar_p"] < 1e-40
    # past 10,000 disagreements the normal approximation: close to the exact p there
    exact = paired_test([1] * 5100 + [0] * 4900, [0] * 5100 + [1] * 4900)["mcnemar_p"]
    approx = paired_test([1] * 5100 + [0] * 4901, [0] * 5100 + [1] * 4901)["mcnemar_p"]
    assert 0.04 < exact < 0.06 and approx == pytest.approx(exact, rel=0.1)
    assert (paired_summary(t["ci95"], t["mcnemar_p"], 100)
            == "95% CI +1.39..+14.61 points on these 100 test images, McNemar p 0.039")
    with pytest.raises(ConfigError, match="the same, non-empty test set"):
        paired_test(a, b[:-1])


def archft(*args):
    return subprocess.run([sys.executable, "-m", "archft.cli", *args], capture_output=True,
                          text=True)


def test_cli_end_to_end(tmp_path):
    run = tmp_path / "run"
    r = archft("search", "--base", "efficientnet_lite0", "--weights", "imagenet", "--scope",
               "small", "--dataset", "digits", "--strategy", "random", "--budget", "4",
               "--seed", "0", "--out", str(run / "search"), "--then-finetune", str(run / "trial"),
               "--set", "finetune.steps=10", "finetune.lr=[0.05,0.1]")
    assert r.returncode == 0, r.stderr
    assert "random search ran its full budget of 4 steps" in r.stdout
    assert "stage 2 of the pick: val " in r.stdout
    # the metric lines a Katib trial reads (k8s/katib-experiment.yaml), in Katib's default format
    metrics = dict(re.findall(r"^([\w|-]+)\s*=\s*([+-]?\d*(?:\.\d+)?(?:[Ee][+-]?\d+)?)$",
                              r.stdout, re.M))
    assert set(metrics) == {"supernet_val_accuracy", "search_cost_saved", "val_accuracy"}
    assert 0 <= float(metrics["supernet_val_accuracy"]) <= 1
    for extra, out in ((["--lr", "0.05,0.1"], "model"), (["--vanilla"], "vanilla")):
        r = archft("finetune", "--architecture", str(run / "search" / "architecture.json"),
                   "--dataset", "digits", "--steps", "10", "--seed", "0", "--out",
                   str(run / out), *extra)
        assert r.returncode == 0, r.stderr
        assert ("(chosen on validation: 0.05 " in r.stdout) == (out == "model"), r.stdout
    # --then-finetune is the two commands in one process: the same model, its val accuracy printed
    model, trial = (json.loads((run / d / "metrics.json").read_text()) for d in ("model", "trial"))
    assert float(metrics["val_accuracy"]) == pytest.approx(trial["val_accuracy"], abs=1e-6)
    for key in ("architecture", "lr", "val_accuracy", "test_accuracy", "curve"):
        assert trial[key] == model[key], key
    assert [(p["val_accuracy"], p["test_accuracy"]) for p in trial["lr_sweep"]] == [
        (p["val_accuracy"], p["test_accuracy"]) for p in model["lr_sweep"]]
    r = archft("export", "--model", str(run / "model"), "--dataset", "digits", "--out",
               str(run / "export"))
    assert r.returncode == 0 and "top-1 agreement" in r.stdout, r.stderr
    r = archft("compare", str(run / "model"), str(run / "vanilla"), "--out", str(run))
    assert r.returncode == 0 and "compute ratio" in r.stdout
    assert re.search(r"points on these \d+ test images, McNemar p ", r.stdout), r.stdout
    assert (run / "compare.md").exists() and (run / "compare.json").exists()


@pytest.mark.parametrize("args,message", [
    (["finetune", "--architecture", "/nope/architecture.json", "--out", "x"],
     "architecture file not found"),
    (["export", "--model", "/nope", "--out", "x"], "model directory not found"),
    (["search", "--strategy", "evolution", "--out", "x"], "unknown strategy 'evolution'"),
    (["search", "--out", "x", "--then-finetune", "./x"], "the model needs its own directory"),
    (["compare", "/nope/a", "/nope/b"], "no metrics.json"),
])
def test_cli_errors_are_one_line(args, message):
    r = archft(*args)
    assert r.returncode == 1 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0


def test_wrong_architecture_file_is_refused(tmp_path, digits):
    bad = tmp_path / "architecture.json"
    bad.write_text(json.dumps({"format": 1, "base": "resnet18", "scope": "small",
                               "kernels": [3, 5], "num_classes": 10,
                               "decisions": [{"layer": "fc", "candidates": [], "choice": 0}]}))
    with pytest.raises(ArchitectureError, match="1 decisions, but resnet18/small has 4"):
        Architecture.load(bad)
