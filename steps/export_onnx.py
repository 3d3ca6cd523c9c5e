"""Step `export_onnx`: the fine-tuned model as an ONNX file a client needs nothing else for."""

from __future__ import annotations

from typing import Annotated

from zenml import log_metadata, step

from archft.core import rundirs
from archft.core.io import atomic_write_json
from archft.data import Dataset
from archft.export import OPSET, export_model
from steps.artifacts import ModelDir, OnnxModel, fresh_workdir


@step
def export_onnx(model: ModelDir, dataset: Dataset) -> Annotated[OnnxModel, "onnx_model"]:
    """Exports with a dynamic batch axis; preprocessing (size, mean, std), class names and the
    architecture travel in the file's metadata_props.

    Args:
        model: from `finetune`.
        dataset: from `ingest` (image size, class names).
    """
    out = fresh_workdir("onnx")
    size = dataset.config.image_size
    path = export_model(model.path, out, size, dataset.classes)
    info = {"opset": OPSET, "bytes": path.stat().st_size, "input_size": size,
            "classes": dataset.classes}
    atomic_write_json(out / rundirs.ONNX.export, info)
    log_metadata({"onnx_bytes": info["bytes"], "opset": OPSET})
    return OnnxModel(out)
