"""What a data validation suite checks, and how a dataset is versioned on disk.

`survey` lists every file a source holds, readable or not (`archft.data.sources.read_source`
with `strict=False`), so that a corrupt image, an empty class folder or an image shared by two
splits becomes a row a validation suite can name instead of an exception half-way through
loading; the same single read also gives the dataset of the readable images. `source_version` is
a cheap stat-based key of the source files (a pipeline caches on it); `materialize` writes a
dataset as a split-layout image folder (the DVC `prepare` stage).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from archft.core.errors import ConfigError, DataError
from archft.core.io import atomic_write_bytes
from archft.data.config import BUNDLED, DataConfig
from archft.data.dataset import Dataset, fingerprint, split_counts
from archft.data.sources import COLUMNS, read_source

__all__ = ["COLUMNS", "Survey", "survey", "source_version", "materialize"]


@dataclass(frozen=True)
class Survey:
    """A source as a validation suite sees it.

    Attributes:
        source: the source string.
        root: directory of its files ("" for the bundled sets).
        classes: every class the source declares (also those with no images).
        rows: one dict per file with `COLUMNS`; `readable` is False (and `error` says why) for a
            file that does not decode as an image.
        dataset: the readable images, loaded by the same read.
    """

    source: str
    root: str
    classes: list[str]
    rows: list[dict]
    dataset: Dataset | None = None

    def fingerprint(self) -> str:
        """`archft.data.fingerprint` over the readable rows (a `Dataset`'s, once loaded)."""
        return fingerprint(self.classes, ((r["path"], r["label"], r["split"], r["sha256"])
                                          for r in self.rows if r["readable"]))

    def counts(self) -> dict[str, dict[str, int]]:
        """split -> class -> readable images."""
        return split_counts(self.classes,
                            ((r["split"], r["label"]) for r in self.rows if r["readable"]))


def survey(config: DataConfig) -> Survey:
    """Lists the source's files with labels, splits, hashes, sizes and channels, and loads
    the readable ones, reading every file once.

    Splits are assigned exactly as `load_dataset` assigns them, so when every file is readable
    the survey's fingerprint equals the loaded dataset's.

    Raises:
        ConfigError / DataError: the source cannot be listed at all (unknown kind, missing
            folder, files beside the class folders); individual bad files do not raise.
    """
    read = read_source(config, strict=False)
    ds = read.dataset
    return Survey(ds.name, ds.root, ds.classes, read.rows, ds)


def source_version(config: DataConfig) -> str:
    """A key that changes whenever a file of the source is added, removed or modified
    (path, size and modification time of each; no file is read), combined with the config.

    A pipeline passes it to its ingest step so that ingest is cached exactly while the data
    stands still.
    """
    h = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode())
    kind, _, arg = config.source.partition(":")
    if kind in BUNDLED:  # the source ships inside the installed packages
        import skimage
        import sklearn

        h.update(f"sklearn {sklearn.__version__} skimage {skimage.__version__}".encode())
        return h.hexdigest()
    root = Path(arg).expanduser()
    if not root.exists():
        raise DataError(f"dataset not found: {root}")
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(root).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}\n"
                     .encode())
    return h.hexdigest()


def materialize(dataset: Dataset, out: str | Path) -> Path:
    """Writes a resident dataset as PNG files in the split layout `out/<split>/<class>/<n>.png`.

    Loading `imagefolder:out` at the same image size gives the same pixels and splits back
    (PNG is lossless; the splits are the folders). Files are written to a temporary folder that
    replaces `out` at the end, so an interrupted run leaves the old copy intact.

    Returns:
        `out`.
    """
    import shutil

    from PIL import Image

    if dataset.images is None:
        raise ConfigError(f"{dataset.name} is streamed from disk; it is an image folder already")
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    width = len(str(len(dataset.records)))
    for i, r in enumerate(dataset.records):
        pixels = dataset.images[i].permute(1, 2, 0).numpy()
        if (pixels == pixels[..., :1]).all():  # grey stored as RGB: keep one channel
            pixels = pixels[..., 0]
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG", optimize=False)
        name = f"{i:0{width}d}.png"
        atomic_write_bytes(tmp / r.split / dataset.classes[r.label] / name, buf.getvalue())
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out
