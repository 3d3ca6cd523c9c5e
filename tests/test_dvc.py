"""Real DVC: the project's `prepare` stage reproduces offline, and `ingest` records the DVC hash
of a tracked image folder and notices when the files no longer match it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from archft.data import DataConfig, load_dataset
from steps.ingest import dvc_version
from tests.conftest import kept_images, write_imagefolder

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    return proc.stdout


def _repo(path: Path) -> Path:
    path.mkdir()
    _run(["git", "init", "-q"], path)
    _run(["dvc", "init", "-q"], path)
    return path


def test_prepare_stage_materialises_the_default_dataset_offline(tmp_path):
    repo = _repo(tmp_path / "project")
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(ROOT / "archft", repo / "archft", ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())["data"]
    name = params["name"]
    _run(["dvc", "repro", "-q"], repo)
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    outs = {o["path"]: o for o in lock["stages"]["prepare"]["outs"]}
    sizing = {k.replace("-", "_"): v for k, v in params["sizing"].items()}
    bundled = load_dataset(DataConfig(params["source"], params["image_size"],
                                      seed=params["seed"], **sizing))
    assert outs[f"data/{name}"]["nfiles"] == len(bundled.records)
    assert f"/{name}" in (repo / "data" / ".gitignore").read_text()  # DVC's, not git's, to track
    assert "didn't change" in _run(["dvc", "repro"], repo)  # reproducible: nothing to do
    # The committed lock is this one: a fresh clone's `make run` leaves no change to commit.
    committed = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]["prepare"]
    assert committed == lock["stages"]["prepare"], "dvc.lock is stale: run `dvc repro`, commit it"
    folder = load_dataset(DataConfig(f"imagefolder:{repo / 'data' / name}",
                                     params["image_size"]))
    assert folder.counts() == bundled.counts()  # same splits, class by class
    assert kept_images(folder, "test") == kept_images(bundled, "test")  # lossless
    assert dvc_version(str(repo / "data" / name)) == {
        "dvc_tracked": True, "dvc_path": f"data/{name}", "dvc_hash": outs[f"data/{name}"]["md5"],
        "dvc_modified": False}


def test_ingest_records_the_dvc_hash_and_notices_changes(tmp_path):
    repo = _repo(tmp_path / "team")
    write_imagefolder(repo / "images", {"cat": 3, "dog": 3})
    _run(["dvc", "add", "-q", "images"], repo)
    md5 = yaml.safe_load((repo / "images.dvc").read_text())["outs"][0]["md5"]
    assert dvc_version(str(repo / "images")) == {
        "dvc_tracked": True, "dvc_path": "images", "dvc_hash": md5, "dvc_modified": False}
    (repo / "images" / "cat" / "cat_0.png").write_bytes(
        (repo / "images" / "dog" / "dog_0.png").read_bytes())
    assert dvc_version(str(repo / "images"))["dvc_modified"] is True
    assert dvc_version(str(tmp_path)) == {"dvc_tracked": False}
