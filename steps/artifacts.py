"""Directory artifacts: a step's output folder stored file by file in the artifact store.

Each file keeps its name (architecture.json, weights.safetensors, model.onnx, ...), so the
artifact is usable without archft or ZenML: copy the folder from the artifact store and go. PNG
files show as visualisations in the dashboard; key numbers of the JSON summary become artifact
metadata.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, ClassVar

from zenml import get_step_context
from zenml.enums import ArtifactType, VisualizationType
from zenml.io import fileio
from zenml.materializers.base_materializer import BaseMaterializer

from archft.search import CHECKPOINT

# Under this folder steps write their outputs before ZenML copies them into the artifact store;
# an interrupted search resumes from its checkpoint there.
WORK_ENV = "ARCHFT_WORK"


class Bundle:
    """A folder of files a step produced.

    Attributes:
        path: the local folder.
    """

    SUMMARY: ClassVar[str] = ""  # JSON file whose scalar fields become metadata
    METADATA: ClassVar[tuple[str, ...]] = ()

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def json(self, name: str) -> dict:
        """A JSON file of the bundle."""
        return json.loads((self.path / name).read_text())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


class SearchResult(Bundle):
    """architecture.json, summary.json, search_history.jsonl, action_heatmap.png,
    reward_curve.png and supernet.safetensors of a search."""

    SUMMARY = "summary.json"
    METADATA = ("strategy", "num_subnets", "num_decisions", "budget", "steps", "stopped_early",
                "stop_step", "cost_saved", "val_accuracy", "wall_seconds")


class SupernetInit(Bundle):
    """space.json and supernet.safetensors: the scoped supernet, remapped from the base."""

    SUMMARY = "space.json"
    METADATA = ("base", "scope", "num_decisions", "num_subnets", "log2_subnets", "weights",
                "trainable_parameters")


class ModelDir(Bundle):
    """architecture.json, weights.safetensors, metrics.json and accuracy_curve.png."""

    SUMMARY = "metrics.json"
    METADATA = ("kind", "base", "scope", "steps", "val_accuracy", "test_accuracy",
                "trainable_parameters", "parameters", "wall_seconds")


class OnnxModel(Bundle):
    """model.onnx (preprocessing, classes and architecture in its metadata_props)."""

    SUMMARY = "export.json"
    METADATA = ("opset", "bytes", "input_size")


class BundleMaterializer(BaseMaterializer):
    """Stores a `Bundle` as plain files under the artifact URI."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (SearchResult, SupernetInit)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA

    def load(self, data_type: type[Any]) -> Any:
        if os.path.isdir(self.uri):  # local artifact store: read in place
            return data_type(self.uri)
        with self.get_temporary_directory(delete_at_exit=False) as local:
            for src in _walk(self.uri):
                dst = os.path.join(local, os.path.relpath(src, self.uri))
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                fileio.copy(src, dst, overwrite=True)
            return data_type(local)

    def save(self, data: Bundle) -> None:
        for src in sorted(p for p in data.path.rglob("*") if p.is_file()):
            dst = os.path.join(self.uri, src.relative_to(data.path).as_posix())
            fileio.makedirs(os.path.dirname(dst))
            fileio.copy(str(src), dst, overwrite=True)

    def save_visualizations(self, data: Bundle) -> dict[str, VisualizationType]:
        return {os.path.join(self.uri, p.relative_to(data.path).as_posix()):
                VisualizationType.IMAGE for p in sorted(data.path.rglob("*.png"))}

    def extract_metadata(self, data: Bundle) -> dict[str, Any]:
        if not data.SUMMARY or not (data.path / data.SUMMARY).is_file():
            return {}
        summary = data.json(data.SUMMARY)
        return {k: summary[k] for k in data.METADATA if summary.get(k) is not None}


class ModelMaterializer(BundleMaterializer):
    """The same, for the deployable outputs (model directory, ONNX file)."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (ModelDir, OnnxModel)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.MODEL


def _walk(uri: str) -> list[str]:
    out = []
    for directory, _, files in fileio.walk(uri):
        out += [os.path.join(str(directory), str(f)) for f in files]
    return out


def workdir(kind: str) -> Path:
    """`$ARCHFT_WORK/<kind>-<cache key of the running step>` (default runs/work): where a step
    writes before its outputs are stored. Finished folders of earlier runs of the same kind are
    removed; one holding a checkpoint (an interrupted search) is kept so that the same step can
    resume from it.
    """
    key = get_step_context().step_run.cache_key or "uncached"
    root = Path(os.environ.get(WORK_ENV, "runs/work"))
    path = root / f"{kind}-{key[:16]}"
    if root.is_dir():
        for old in root.glob(f"{kind}-*"):
            if old != path and not (old / CHECKPOINT).exists():
                shutil.rmtree(old, ignore_errors=True)
    return path


def fresh_workdir(kind: str) -> Path:
    """`workdir`, emptied (for steps that do not resume)."""
    path = workdir(kind)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
