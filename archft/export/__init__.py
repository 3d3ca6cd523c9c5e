"""A fine-tuned model out of archft: ONNX export with onnxruntime evaluation, and the comparison
of two model directories. Imports `archft.finetune` and what lies below it."""

from archft.export.compare import (
    compare,
    paired_summary,
    paired_test,
    render,
    steps_to_reach,
    write,
)
from archft.export.onnx import (
    OPSET,
    batch1_latency,
    evaluate_onnx,
    export_model,
    export_onnx,
    preprocess,
    read_preprocessing,
    run_export,
)
from archft.export.select import choose_model

__all__ = ["OPSET", "batch1_latency", "choose_model",
           "compare", "evaluate_onnx", "export_model", "export_onnx",
           "paired_summary", "paired_test", "preprocess", "read_preprocessing", "render",
           "run_export", "steps_to_reach", "write"]
