"""Step `ingest`: read the dataset once (every file hashed and decoded once), list every file in
the manifest, record its versions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import pandas as pd
from zenml import log_metadata, step

from archft.data import DataConfig, Dataset
from archft.data.survey import COLUMNS, source_version, survey
from steps.artifacts import counting_decodes


def data_version(data: dict) -> str | None:
    """The cache key of `ingest` (see `archft.data.survey.source_version`), or None when the
    source is not on this machine (a remote orchestrator): ingest then always runs."""
    try:
        return source_version(DataConfig.from_dict(data))
    except Exception:  # noqa: BLE001 - whatever is wrong, ingest itself reports it
        return None


def dvc_version(root: str) -> dict:
    """The DVC hash of the tracked output holding `root` (in the DVC repository around it), and
    whether the files still match it."""
    if not root:
        return {"dvc_tracked": False}
    try:
        from dvc.exceptions import NotDvcRepoError
        from dvc.repo import Repo
    except ImportError:
        return {"dvc_tracked": False}
    path = os.path.realpath(root)
    try:
        with Repo(Repo.find_root(path)) as repo:
            for out in repo.index.outs:
                if path == out.fs_path or path.startswith(out.fs_path + os.sep):
                    changed = bool(repo.status(targets=[out.stage.addressing]))
                    return {"dvc_tracked": True, "dvc_path": str(out.def_path),
                            "dvc_hash": out.hash_info.value, "dvc_modified": changed}
    except NotDvcRepoError:
        pass
    return {"dvc_tracked": False}


@step
def ingest(data: dict, version: str | None = None) -> tuple[
        Annotated[Dataset, "dataset"], Annotated[pd.DataFrame, "manifest"]]:
    """Reads the source named by `data` (`archft.data.DataConfig` fields), every file once.

    Args:
        data: the data configuration.
        version: the source's `data_version` (keys the cache; kept in the dataset's
            provenance, so a streamed folder that changes later is noticed).

    Returns:
        The dataset (records, class names, the pixels of a resident set; provenance: DVC hash
        and source version), the typed artifact every later step reads; and the manifest: one
        row per file with path, label, class, split, sha256, size, channels and whether it
        decodes (unreadable files too, for `validate` to name).
    """
    config = DataConfig.from_dict(data)
    with counting_decodes():
        s = survey(config)
    dataset = s.dataset
    if dataset.root and not Path(dataset.root).is_absolute():
        dataset.root = str(Path(dataset.root).resolve())
    dataset.provenance = {**dvc_version(s.root), "source_version": version}
    counts = s.counts()
    log_metadata({"source": s.source, "root": dataset.root, "classes": s.classes,
                  "images": len(s.rows), "unreadable": sum(not r["readable"] for r in s.rows),
                  "fingerprint": s.fingerprint(),
                  **{f"{split}_images": sum(c.values()) for split, c in counts.items()},
                  **{k: v for k, v in dataset.provenance.items() if v is not None}})
    return dataset, pd.DataFrame(s.rows, columns=list(COLUMNS))
