"""Step `evaluate`: the shipped model in onnxruntime on the test split, beside both models it was
chosen from."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import torch
from zenml import log_metadata, step

from archft.core import rundirs
from archft.data import Dataset
from archft.export import batch1_latency, evaluate_onnx, export_model, paired_test
from steps.artifacts import ModelDir, OnnxModel, SearchResult, counting_decodes

COST = rundirs.COST_METRICS


def _model_figures(prefix: str, metrics: dict) -> dict:
    """`two_stage_val_accuracy`, `vanilla_madds`, ...: one model's figures under its prefix."""
    return {f"{prefix}_{k}": metrics.get(k) for k in ("val_accuracy", "test_accuracy", *COST)}


def _latencies(shipped: str, onnx_path: Path, others: dict[str, ModelDir], dataset: Dataset
               ) -> dict[str, float]:
    """Batch-1 onnxruntime latency of every model, side by side in this process: the shipped
    model's export and a temporary export of each other one."""
    with tempfile.TemporaryDirectory(prefix="archft-latency-") as tmp:
        paths = {shipped: onnx_path}
        for kind, model in others.items():
            if kind != shipped:
                paths[kind] = export_model(model.path, Path(tmp) / kind,
                                           dataset.config.image_size, dataset.classes)
        return batch1_latency(paths)


@step
def evaluate(onnx_model: OnnxModel, shipped_model: ModelDir, search_result: SearchResult,
             dataset: Dataset, model: ModelDir, vanilla_model: ModelDir | None = None,
             selection: dict | None = None) -> Annotated[dict, "evaluation"]:
    """The numbers a promotion decision and an audit need, also logged to the model version.

    Args:
        onnx_model: the shipped model's export, from `export_onnx`.
        shipped_model: the model directory it was exported from (from `select_model`, or the
            two-stage model when the pipeline runs no baseline).
        search_result: from `search` (space size, early stop, search cost).
        dataset: from `ingest`.
        model: the two-stage model, from `finetune`.
        vanilla_model: from `vanilla_baseline`, if the pipeline ran it.
        selection: from `select_model`: which of the two ships, and why.

    Returns:
        `rundirs.EVALUATION_METRICS` and per-class accuracy. `test_accuracy` (torch),
        `onnx_test_accuracy` (onnxruntime, what a promotion compares), `val_accuracy`, `madds`,
        `params` and `onnxruntime_batch1_ms` are the shipped model's; `shipped` says which it
        is and `shipped_reason` why. Both models' figures follow under `two_stage_` and
        `vanilla_` (their batch-1 latencies measured side by side), and the gain of the
        two-stage model over vanilla on the test split with its 95% interval and McNemar's p
        on the same images (`export.paired_test`: the test set's noise, not the seed's).
    """
    with counting_decodes():
        report = evaluate_onnx(onnx_model.path / rundirs.ONNX.model, shipped_model.path, dataset)
    s = search_result.json(rundirs.SEARCH.summary)
    shipped = shipped_model.json(rundirs.MODEL.metrics)
    two_stage = model.json(rundirs.MODEL.metrics)
    kind = selection["chosen"] if selection else "two-stage"
    evaluation = {
        **{k: report[k] for k in ("test_accuracy", "onnx_test_accuracy", "onnx_top1_agreement",
                                  "onnx_max_logit_difference")},
        **{k: report["latency"][k] for k in ("onnxruntime_batch1_ms", "onnxruntime_batch64_ms")},
        "test_images": report["images"], "per_class_accuracy": report["per_class_accuracy"],
        "shipped": kind,
        "shipped_reason": (selection["reason"] if selection else
                           "the only model: this run trained no baseline (vanilla: false)"),
        "shipped_val_ci95": selection["val_ci95"] if selection else None,
        "val_accuracy": shipped["val_accuracy"], **{k: shipped.get(k) for k in COST},
        "shipped_architecture": " ".join(shipped["architecture"]),
        "finetune_lr": two_stage.get("lr"), "finetune_lr_sweep": two_stage.get("lr_sweep"),
        "architecture": " ".join(s["architecture"]),
        **{k: s[k] for k in ("base", "scope", "strategy", "num_subnets", "early_stop_step",
                             "search_steps", "search_budget", "search_cost_saved")},
        "search_cost_weight": s["config"].get("cost", {}).get("weight", 0.0),
        **_model_figures("two_stage", two_stage),
        "dataset": dataset.name, "dataset_fingerprint": dataset.fingerprint(),
        "dvc_hash": dataset.provenance.get("dvc_hash"), "threads": torch.get_num_threads(),
    }
    models = {"two-stage": model}
    if vanilla_model is not None:
        vanilla = vanilla_model.json(rundirs.MODEL.metrics)
        models["vanilla"] = vanilla_model
        evaluation |= {**_model_figures("vanilla", vanilla),
                       "vanilla_finetune_lr": vanilla.get("lr"),
                       "vanilla_finetune_lr_sweep": vanilla.get("lr_sweep"),
                       "gain_over_vanilla": two_stage["test_accuracy"] - vanilla["test_accuracy"]}
        if two_stage.get("test_correct") and vanilla.get("test_correct"):
            paired = paired_test(two_stage["test_correct"], vanilla["test_correct"])
            evaluation |= {"gain_over_vanilla_ci95": paired["ci95"],
                           "gain_over_vanilla_p": paired["mcnemar_p"]}
    latency = _latencies(kind, onnx_model.path / rundirs.ONNX.model, models, dataset)
    evaluation |= {f"{k.replace('-', '_')}_onnxruntime_batch1_ms": v for k, v in latency.items()}
    # The shipped model's latency is its side-by-side figure, comparable with the other's.
    evaluation["onnxruntime_batch1_ms"] = latency[kind]
    log_metadata({k: v for k, v in evaluation.items() if v is not None})
    return evaluation
