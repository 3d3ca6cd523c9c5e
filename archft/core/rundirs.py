"""The one owner of what a run writes: the file names of every output folder and the names of
the metrics in them.

A metric has one name everywhere: in a search's `summary.json`, a model's `metrics.json`, the
pipeline's evaluation, the step, artifact and model-version metadata, the CLI's output and the
README. Code that writes or reads these files takes the names from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SearchFiles:
    """A search's output folder (`archft search --out`, the `search` step's artifact)."""

    architecture: str = "architecture.json"
    summary: str = "summary.json"
    history: str = "search_history.jsonl"
    heatmap: str = "action_heatmap.png"
    reward_curve: str = "reward_curve.png"
    pareto: str = "pareto.png"
    supernet: str = "supernet.safetensors"
    checkpoint: str = "checkpoint.pt"  # only while the search is unfinished


@dataclass(frozen=True)
class SupernetFiles:
    """The `build_supernet` step's artifact: the space and its remapped supernet."""

    space: str = "space.json"
    supernet: str = "supernet.safetensors"


@dataclass(frozen=True)
class ModelFiles:
    """A model directory (`archft finetune --out`, the `finetune` and `vanilla_baseline`
    artifacts)."""

    architecture: str = "architecture.json"
    weights: str = "weights.safetensors"
    metrics: str = "metrics.json"
    accuracy_curve: str = "accuracy_curve.png"


@dataclass(frozen=True)
class OnnxFiles:
    """An export folder (`archft export --out`, the `export_onnx` artifact)."""

    model: str = "model.onnx"
    report: str = "onnx_report.json"
    export: str = "export.json"


@dataclass(frozen=True)
class ResultFiles:
    """What `run.py` copies out of a finished pipeline run (`--results`), besides the search,
    model, vanilla and onnx folders."""

    evaluation: str = "evaluation.json"
    promotion: str = "promotion.json"
    validation_report: str = "validation_report.html"
    model_card: str = "model_card.html"
    compare_json: str = "compare.json"
    compare_md: str = "compare.md"


SEARCH = SearchFiles()
SUPERNET = SupernetFiles()
MODEL = ModelFiles()
ONNX = OnnxFiles()
RESULTS = ResultFiles()

# Metrics of a search (summary.json; the search step and artifact metadata; the evaluation).
SEARCH_METRICS = ("strategy", "num_decisions", "num_subnets", "search_budget", "search_steps",
                  "stopped_early", "early_stop_step", "search_cost_saved",
                  "supernet_val_accuracy", "search_seconds", "madds", "params",
                  "scope_madds", "base_madds", "madds_vs_base")
# The cost of an architecture (archft.models.cost, archft.nas.cost): multiply-adds and
# parameters per image of the whole net, and multiply-adds of the scope's blocks alone.
COST_METRICS = ("madds", "params", "scope_madds")
# Metrics of a fine-tuned model (metrics.json; the finetune/vanilla artifacts' metadata).
# `test_accuracy` is the model's own, in torch; `onnx_test_accuracy` its ONNX export's.
MODEL_METRICS = ("kind", "base", "scope", "finetune_steps", "lr", "val_accuracy",
                 "test_accuracy", "trainable_parameters", "parameters", "finetune_seconds",
                 "madds", "params", "scope_madds")
# The evaluation of an exported model (the evaluate step; copied onto the model version).
EVALUATION_METRICS = ("shipped", "shipped_reason", "shipped_architecture", "madds", "params",
                      "scope_madds", "two_stage_val_accuracy", "two_stage_test_accuracy",
                      "two_stage_madds", "two_stage_params", "two_stage_scope_madds",
                      "two_stage_onnxruntime_batch1_ms", "vanilla_val_accuracy",
                      "vanilla_madds", "vanilla_params", "vanilla_scope_madds",
                      "vanilla_onnxruntime_batch1_ms", "search_cost_weight",
                      "test_accuracy", "onnx_test_accuracy", "onnx_top1_agreement",
                      "onnx_max_logit_difference", "onnxruntime_batch1_ms",
                      "onnxruntime_batch64_ms",
                      "val_accuracy", "finetune_lr", "architecture", "base", "scope", "strategy",
                      "num_subnets", "early_stop_step", "search_steps", "search_budget",
                      "search_cost_saved", "vanilla_test_accuracy", "vanilla_finetune_lr",
                      "gain_over_vanilla", "gain_over_vanilla_ci95", "gain_over_vanilla_p",
                      "dataset", "dataset_fingerprint", "dvc_hash")
# What a promotion compares: the accuracy of the artefact that is deployed.
PROMOTION_METRIC = "onnx_test_accuracy"
