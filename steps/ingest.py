"""Step `ingest`: resolve the dataset, survey every file into the manifest, record its versions."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import pandas as pd
from zenml import log_metadata, step

from archft.data import DataConfig
from archft.manifest import COLUMNS, source_version, survey


def data_version(data: dict) -> str | None:
    """The cache key of `ingest` (see `archft.manifest.source_version`), or None when the
    source is not on this machine (a remote orchestrator): ingest then always runs."""
    try:
        return source_version(DataConfig(**data))
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
        Annotated[dict, "dataset"], Annotated[pd.DataFrame, "manifest"]]:
    """Surveys the source named by `data` (an `archft.data.DataConfig` as a dict).

    Args:
        data: the data configuration.
        version: the source's `data_version` (only there to key the cache).

    Returns:
        The dataset description (config, classes, counts, fingerprint, DVC hash) and the
        manifest: one row per file with path, label, class, split, sha256, size, channels and
        whether it decodes.
    """
    config = DataConfig(**data)
    s = survey(config)
    info = {"source": s.source, "root": s.root, "config": asdict(config), "classes": s.classes,
            "images": len(s.rows), "unreadable": sum(not r["readable"] for r in s.rows),
            "counts": s.counts(), "fingerprint": s.fingerprint(), **dvc_version(s.root)}
    if s.root and not Path(s.root).is_absolute():
        info["root"] = str(Path(s.root).resolve())
    log_metadata({k: v for k, v in info.items() if k not in ("config", "counts")})
    return info, pd.DataFrame(s.rows, columns=list(COLUMNS))


def load_ingested(info: dict):
    """(Dataset, DataConfig) of an ingested dataset, refusing data that changed since ingest.

    Raises:
        DataError: the files no longer match the fingerprint recorded by `ingest`.
    """
    from archft.data import load_dataset
    from archft.errors import DataError

    config = DataConfig(**info["config"])
    dataset = load_dataset(config)
    if dataset.fingerprint() != info["fingerprint"]:
        raise DataError(f"{info['source']} changed since it was ingested and validated "
                        "(fingerprint differs); run the pipeline again")
    return dataset, config
