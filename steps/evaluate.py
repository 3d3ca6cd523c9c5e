"""Step `evaluate`: onnxruntime on the test split, against torch and the vanilla baseline."""

from __future__ import annotations

from typing import Annotated

import torch
from zenml import log_metadata, step

from archft.core import rundirs
from archft.data import Dataset
from archft.export import evaluate_onnx, paired_test
from steps.artifacts import ModelDir, OnnxModel, SearchResult, counting_decodes


@step
def evaluate(onnx_model: OnnxModel, model: ModelDir, search_result: SearchResult,
             dataset: Dataset, vanilla_model: ModelDir | None = None
             ) -> Annotated[dict, "evaluation"]:
    """The numbers a promotion decision and an audit need, also logged to the model version.

    Args:
        onnx_model: from `export_onnx`.
        model: the model directory it was exported from.
        search_result: from `search` (space size, early stop, search cost).
        dataset: from `ingest`.
        vanilla_model: from `vanilla_baseline`, if the pipeline ran it.

    Returns:
        `rundirs.EVALUATION_METRICS` and per-class accuracy: the test accuracy of the model in
        torch (`test_accuracy`) and of its ONNX export in onnxruntime (`onnx_test_accuracy`,
        what a promotion compares), ONNX parity and latency, the search's figures, the stage-2
        learning rate (and the validation sweep it was chosen from, if any) and, with a
        baseline, its test accuracy, its rate and the gain over it, with the gain's 95%
        interval and McNemar's p on the same test images (`export.paired_test`: the test
        set's noise, not the seed's).
    """
    with counting_decodes():
        report = evaluate_onnx(onnx_model.path / rundirs.ONNX.model, model.path, dataset)
    s = search_result.json(rundirs.SEARCH.summary)
    metrics = model.json(rundirs.MODEL.metrics)
    evaluation = {
        **{k: report[k] for k in ("test_accuracy", "onnx_test_accuracy", "onnx_top1_agreement",
                                  "onnx_max_logit_difference")},
        **{k: report["latency"][k] for k in ("onnxruntime_batch1_ms", "onnxruntime_batch64_ms")},
        "test_images": report["images"], "per_class_accuracy": report["per_class_accuracy"],
        "val_accuracy": metrics["val_accuracy"], "finetune_lr": metrics.get("lr"),
        "finetune_lr_sweep": metrics.get("lr_sweep"), "architecture": " ".join(s["architecture"]),
        **{k: s[k] for k in ("base", "scope", "strategy", "num_subnets", "early_stop_step",
                             "search_steps", "search_budget", "search_cost_saved")},
        "dataset": dataset.name, "dataset_fingerprint": dataset.fingerprint(),
        "dvc_hash": dataset.provenance.get("dvc_hash"), "threads": torch.get_num_threads(),
    }
    if vanilla_model is not None:
        vanilla = vanilla_model.json(rundirs.MODEL.metrics)
        base = vanilla["test_accuracy"]
        evaluation |= {"vanilla_test_accuracy": base, "vanilla_finetune_lr": vanilla.get("lr"),
                       "vanilla_finetune_lr_sweep": vanilla.get("lr_sweep"),
                       "gain_over_vanilla": evaluation["test_accuracy"] - base}
        if metrics.get("test_correct") and vanilla.get("test_correct"):
            paired = paired_test(metrics["test_correct"], vanilla["test_correct"])
            evaluation |= {"gain_over_vanilla_ci95": paired["ci95"],
                           "gain_over_vanilla_p": paired["mcnemar_p"]}
    log_metadata({k: v for k, v in evaluation.items() if v is not None})
    return evaluation
