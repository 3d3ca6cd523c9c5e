"""The typed artifacts steps exchange, and where steps write before they are stored.

- Directory artifacts (`Bundle`s: a search result, the supernet, a model directory, an ONNX
  export): a step's output folder stored file by file in the artifact store. Each file keeps
  its name (`archft.core.rundirs`), so the artifact is usable without archft or ZenML: copy the
  folder from the artifact store and go. PNG files show as visualisations in the dashboard; the
  metrics of the JSON summary become artifact metadata, by their one name.
- The ingested `archft.data.Dataset`: records, class names and configuration as JSON and the
  pixels of a resident set as one uint8 safetensors tensor, so that no later step reads or
  decodes the source files again (a streamed folder, too large to hold, is decoded by the
  loaders of the steps that train on it).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import astuple
from pathlib import Path
from typing import Any, ClassVar

from zenml import get_step_context, log_metadata
from zenml.enums import ArtifactType, VisualizationType
from zenml.io import fileio
from zenml.materializers.base_materializer import BaseMaterializer

from archft.core import rundirs
from archft.core.errors import DataError
from archft.data import DataConfig, Dataset, Record, decoded_images
from archft.data.sources import folder_decoder
from archft.data.survey import source_version
from archft.space import SearchSpace

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
    """A search's folder (`rundirs.SEARCH`): architecture, summary, history, plots and the
    searched supernet weights."""

    SUMMARY = rundirs.SEARCH.summary
    METADATA = rundirs.SEARCH_METRICS


class SupernetInit(Bundle):
    """`rundirs.SUPERNET`: the space (`SearchSpace.to_dict` and its summary) and the scoped
    supernet, remapped from the base."""

    SUMMARY = rundirs.SUPERNET.space
    METADATA = ("base", "scope", "num_decisions", "num_subnets", "log2_subnets", "weights",
                "trainable_parameters")

    @property
    def space(self) -> SearchSpace:
        return SearchSpace.from_dict(self.json(rundirs.SUPERNET.space))


class ModelDir(Bundle):
    """A model directory (`rundirs.MODEL`): architecture, weights, metrics, accuracy curve."""

    SUMMARY = rundirs.MODEL.metrics
    METADATA = rundirs.MODEL_METRICS


class OnnxModel(Bundle):
    """`rundirs.ONNX`: model.onnx (preprocessing, classes and architecture in its
    metadata_props) and export.json."""

    SUMMARY = rundirs.ONNX.export
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


DATASET_FORMAT = 1
_DATASET_JSON, _RECORDS, _PIXELS = "dataset.json", "records.json", "pixels.safetensors"


class DatasetMaterializer(BaseMaterializer):
    """Stores an ingested `Dataset`: dataset.json (name, root, classes, stored size, flip, its
    data configuration and provenance), records.json (the manifest rows) and, for a resident
    set, pixels.safetensors (uint8, one row per record)."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (Dataset,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA

    def save(self, data: Dataset) -> None:
        from archft.core.io import save_safetensors

        meta = {"format": DATASET_FORMAT, "name": data.name, "root": data.root,
                "classes": data.classes, "stored_size": data.stored_size, "flip": data.flip,
                "resident": data.images is not None,
                "config": data.config.to_dict() if data.config else None,
                "provenance": data.provenance}
        with self.get_temporary_directory(delete_at_exit=True) as tmp:
            local = Path(tmp)
            (local / _DATASET_JSON).write_text(json.dumps(meta, indent=2))
            (local / _RECORDS).write_text(json.dumps([list(astuple(r)) for r in data.records]))
            if data.images is not None:
                save_safetensors(local / _PIXELS, {"images": data.images})
            for f in sorted(local.iterdir()):
                fileio.copy(str(f), os.path.join(self.uri, f.name), overwrite=True)

    def load(self, data_type: type[Any]) -> Dataset:
        if os.path.isdir(self.uri):  # local artifact store: read in place
            return _read_dataset(Path(self.uri))
        with self.get_temporary_directory(delete_at_exit=True) as tmp:
            for name in (_DATASET_JSON, _RECORDS, _PIXELS):
                if fileio.exists(os.path.join(self.uri, name)):
                    fileio.copy(os.path.join(self.uri, name), os.path.join(tmp, name),
                                overwrite=True)
            return _read_dataset(Path(tmp))

    def extract_metadata(self, data: Dataset) -> dict[str, Any]:
        counts = data.counts()
        return {"source": data.name, "classes": len(data.classes),
                "images": len(data.records), "resident": data.images is not None,
                "fingerprint": data.fingerprint(),
                **{f"{split}_images": sum(c.values()) for split, c in counts.items()},
                **{k: v for k, v in data.provenance.items() if v is not None}}


def _read_dataset(folder: Path) -> Dataset:
    from safetensors.torch import load_file

    meta = json.loads((folder / _DATASET_JSON).read_text())
    records = [Record(*r) for r in json.loads((folder / _RECORDS).read_text())]
    images = load_file(str(folder / _PIXELS))["images"] if meta["resident"] else None
    config = DataConfig.from_dict(meta["config"]) if meta["config"] else None
    decode = None
    if not meta["resident"]:  # streamed: batches are decoded from the files, still unchanged?
        version = meta["provenance"].get("source_version")
        if version and config and source_version(config) != version:
            raise DataError(f"{meta['name']} changed since it was ingested and validated; run "
                            "the pipeline again")
        decode = folder_decoder(meta["root"], meta["stored_size"])
    return Dataset(meta["name"], meta["root"], meta["classes"], records, images,
                   meta["stored_size"], meta["flip"], decode=decode, config=config,
                   provenance=meta["provenance"])


@contextlib.contextmanager
def counting_decodes():
    """Logs `decoded_images` (image files this step decoded) as step metadata at the end: 0
    for every step but ingest, which reads each file once, unless a folder is streamed."""
    start = decoded_images()
    yield
    log_metadata({"decoded_images": decoded_images() - start})


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
            if old != path and not (old / rundirs.SEARCH.checkpoint).exists():
                shutil.rmtree(old, ignore_errors=True)
    return path


def fresh_workdir(kind: str) -> Path:
    """`workdir`, emptied (for steps that do not resume)."""
    path = workdir(kind)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
