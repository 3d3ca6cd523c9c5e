"""Step `evaluate`: onnxruntime on the test split, against torch and the vanilla baseline."""

from __future__ import annotations

from typing import Annotated

import torch
from zenml import log_metadata, step

from archft.export import evaluate_onnx
from steps.artifacts import ModelDir, OnnxModel, SearchResult
from steps.ingest import load_ingested


@step
def evaluate(onnx_model: OnnxModel, model: ModelDir, search_result: SearchResult, dataset: dict,
             vanilla_model: ModelDir | None = None) -> Annotated[dict, "evaluation"]:
    """The numbers a promotion decision and an audit need, also logged to the model version.

    Args:
        onnx_model: from `export_onnx`.
        model: the model directory it was exported from.
        search_result: from `search` (space size, early stop, search cost).
        dataset: from `ingest`.
        vanilla_model: from `vanilla_baseline`, if the pipeline ran it.

    Returns:
        `test_accuracy` (onnxruntime, the deployed artefact), ONNX parity and latency, search
        figures and, with a baseline, its test accuracy and the gain over it.
    """
    data, _ = load_ingested(dataset)
    report = evaluate_onnx(onnx_model.path / "model.onnx", model.path, data)
    s = search_result.json("summary.json")
    metrics = model.json("metrics.json")
    evaluation = {
        "test_accuracy": report["onnx_accuracy"], "torch_test_accuracy": report["torch_accuracy"],
        "onnx_top1_agreement": report["top1_agreement"],
        "onnx_max_logit_difference": report["max_logit_difference"],
        "latency_ms_batch1": report["latency"]["onnxruntime_batch1_ms"],
        "latency_ms_batch64": report["latency"]["onnxruntime_batch64_ms"],
        "test_images": report["images"], "per_class_accuracy": report["per_class_accuracy"],
        "val_accuracy": metrics["val_accuracy"], "architecture": " ".join(s["architecture"]),
        "base": s["base"], "scope": s["scope"], "strategy": s["strategy"],
        "subnets_in_space": s["num_subnets"], "early_stop_step": s["stop_step"],
        "search_steps": s["steps"], "search_budget": s["budget"],
        "search_cost_saved": s["cost_saved"], "dataset": dataset["source"],
        "dataset_fingerprint": dataset["fingerprint"], "dvc_hash": dataset.get("dvc_hash"),
        "threads": torch.get_num_threads(),
    }
    if vanilla_model is not None:
        base = vanilla_model.json("metrics.json")["test_accuracy"]
        evaluation |= {"vanilla_test_accuracy": base,
                       "gain_over_vanilla": evaluation["torch_test_accuracy"] - base}
    log_metadata({k: v for k, v in evaluation.items() if v is not None})
    return evaluation
