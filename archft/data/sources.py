"""Dataset sources, each read once: bundled sets, CIFAR-10 and image folders.

Sources (`DataConfig.source`):
    digits            scikit-learn's bundled 8x8 handwritten digits (1797 images, offline)
    photos, textures  patch tasks cut from scikit-image's bundled photographs (`archft.data.tasks`)
    cifar10:ROOT      CIFAR-10 under ROOT (binary or python version); downloaded only on request
    imagefolder:PATH  PATH/<class>/<image>, or PATH/train|val|test/<class>/<image>

Splits are fixed by a seed (`archft.data.splits`). Identical images (same sha256) are kept in one
split, so a carved validation or test split never leaks training images; a user-given test folder
is taken as it is (validation reports leaks there rather than hiding them).

`read_source` reads every file of a source once: it hashes, decodes (the corruption check) and
keeps the pixels of a resident set, and lists every file, readable or not, for a validation
suite to report (`strict=False`); `load_dataset` is the strict read, failing at the first bad
file with its name.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from archft.core.errors import ConfigError, DataError
from archft.data.config import BUNDLED, IMAGE_EXTENSIONS, SPLITS, DataConfig
from archft.data.dataset import Dataset, Record, content_hash
from archft.data.images import decode, resize_uint8, unreadable_reason
from archft.data.splits import assign_splits, few_shot

# Columns of a source's file listing (`SourceRead.rows`, the pipeline's manifest).
COLUMNS = ("path", "label", "class", "split", "sha256", "width", "height", "channels",
           "readable", "error")


@dataclass
class SourceRead:
    """A source read once: its dataset (readable images) and a row per file.

    Attributes:
        dataset: the loaded dataset (every readable image, few-shot selection applied).
        rows: one dict per file with `COLUMNS` (unreadable ones too, `readable` False and
            `error` saying why), in the dataset's record order for the readable ones.
    """

    dataset: Dataset
    rows: list[dict]


def read_source(config: DataConfig, strict: bool = True) -> SourceRead:
    """Reads and splits the source named by `config.source`, every file once.

    Args:
        config: the data configuration.
        strict: fail at the first unreadable file, empty class folder or non-image file
            (loading); else list them as rows a validation suite reports.

    Raises:
        ConfigError: unknown source.
        DataError: missing, empty, corrupt or malformed data (the message names the file);
            with `strict=False` only what makes the source unlistable (a missing folder, files
            beside the class folders, an unreadable CIFAR-10 batch).
    """
    kind, _, arg = config.source.partition(":")
    readers = {"digits": _read_digits, "photos": _read_patches, "textures": _read_patches,
               "cifar10": _read_cifar10, "imagefolder": _read_imagefolder}
    if kind not in readers:
        raise ConfigError(f"unknown dataset {config.source!r}; use {', '.join(BUNDLED)}, "
                          "cifar10:ROOT or imagefolder:PATH")
    if kind in BUNDLED and arg:
        raise ConfigError(f"the {kind} dataset takes no path")
    if kind not in BUNDLED and not arg:
        raise ConfigError(f"dataset {kind} needs a path: {kind}:PATH")
    read = readers[kind](config, arg, strict)
    read.dataset.config = config
    if config.flip is not None:
        read.dataset.flip = config.flip
    if config.train_per_class is not None:
        _keep_few_shot(read, config)
    return read


def load_dataset(config: DataConfig) -> Dataset:
    """Loads and splits the dataset named by `config.source` (`read_source`, strict)."""
    return read_source(config, strict=True).dataset


def _keep_few_shot(read: SourceRead, config: DataConfig) -> None:
    """Applies `few_shot` to the rows (unreadable ones too) and the dataset alike."""
    keep = few_shot([r["class"] for r in read.rows], [r["split"] for r in read.rows], config)
    kept = {r["path"] for r, k in zip(read.rows, keep) if k}
    read.rows = [r for r, k in zip(read.rows, keep) if k]
    ds = read.dataset
    mask = torch.tensor([r.path in kept for r in ds.records], dtype=torch.bool)
    ds.records = [r for r, k in zip(ds.records, mask) if k]
    if ds.images is not None:
        ds.images = ds.images[mask]


def _rows(dataset: Dataset, channels: int) -> list[dict]:
    """File rows of a source with no unreadable files (the bundled sets, CIFAR-10)."""
    return [{**r, "channels": channels, "readable": True, "error": ""}
            for r in dataset.manifest()]


# ---------------------------------------------------------------------------------------------
# digits and the patch tasks


def _read_digits(config: DataConfig, _arg: str, _strict: bool) -> SourceRead:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # 0..16 -> 0..255, grey replicated to RGB.
    raw = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # (N, 8, 8)
    labels = [int(t) for t in bunch.target]
    hashes = [content_hash(im.tobytes()) for im in raw]
    splits = assign_splits(labels, hashes, [None] * len(raw), config)
    x = torch.from_numpy(raw)[:, None].expand(-1, 3, -1, -1)
    images = resize_uint8(x, config.image_size)
    records = [Record(f"digits:{i}", labels[i], splits[i], hashes[i], 8, 8)
               for i in range(len(raw))]
    ds = Dataset("digits", "", [str(c) for c in bunch.target_names], records, images,
                 config.image_size, flip=False)
    return SourceRead(ds, _rows(ds, 1))


def _read_patches(config: DataConfig, _arg: str, _strict: bool) -> SourceRead:
    from archft.data.tasks import make_patches

    classes, raw, labels, given = make_patches(config.source, config.image_size, config.seed,
                                                config.patches, config.patch_side)
    hashes = [content_hash(im.tobytes()) for im in raw]
    splits = assign_splits(labels, hashes, given, config)
    s = config.image_size
    records = [Record(f"{config.source}:{i}", labels[i], splits[i], hashes[i], s, s)
               for i in range(len(raw))]
    images = torch.from_numpy(raw).permute(0, 3, 1, 2).contiguous()
    ds = Dataset(config.source, "", classes, records, images, s, flip=True)
    return SourceRead(ds, _rows(ds, 3))


# ---------------------------------------------------------------------------------------------
# CIFAR-10


CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]
_CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
_CIFAR_TEST = ["test_batch"]


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Reads CIFAR-10's python batches without executing anything: only numpy's array
    reconstruction may be referenced, everything else is refused."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_cifar_python(path: Path) -> tuple[np.ndarray, list[int]]:
    try:
        with open(path, "rb") as f:
            batch = _NumpyOnlyUnpickler(f, encoding="latin1").load()
        data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = [int(v) for v in batch.get("labels", batch.get("fine_labels"))]
    except Exception as e:  # noqa: BLE001 - anything wrong with the file is a data error
        raise DataError(f"corrupt CIFAR-10 batch {path}: {e}") from None
    if len(labels) != len(data):
        raise DataError(f"corrupt CIFAR-10 batch {path}: {len(data)} images, {len(labels)} labels")
    return data, labels


def _read_cifar_binary(path: Path) -> tuple[np.ndarray, list[int]]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % 3073:
        raise DataError(f"corrupt CIFAR-10 batch {path}: {raw.size} bytes is not a multiple of "
                        "3073 (1 label byte + 32x32x3 pixels)")
    raw = raw.reshape(-1, 3073)
    return raw[:, 1:].reshape(-1, 3, 32, 32), [int(v) for v in raw[:, 0]]


def _find_cifar(root: Path) -> tuple[Path, str] | None:
    for base in (root, root.parent):
        for sub, kind in (("cifar-10-batches-bin", "bin"), ("cifar-10-batches-py", "py")):
            if (base / sub).is_dir():
                return base / sub, kind
        if base.name in ("cifar-10-batches-bin", "cifar-10-batches-py") and base.is_dir():
            return base, "bin" if base.name.endswith("bin") else "py"
    return None


def _read_cifar10(config: DataConfig, arg: str, _strict: bool) -> SourceRead:
    root = Path(arg).expanduser()
    found = _find_cifar(root)
    if found is None and config.download:
        from torchvision.datasets import CIFAR10
        from torchvision.datasets.utils import download_and_extract_archive

        try:
            download_and_extract_archive(CIFAR10.url, str(root), filename=CIFAR10.filename,
                                         md5=CIFAR10.tgz_md5)
        except Exception as e:  # noqa: BLE001
            raise DataError(f"could not download CIFAR-10 into {root}: {e}") from None
        found = _find_cifar(root)
    if found is None:
        raise DataError(f"CIFAR-10 not found under {root}: expected cifar-10-batches-py/ or "
                        "cifar-10-batches-bin/ there (extract the archive, or pass --download)")
    folder, kind = found
    reader = _read_cifar_binary if kind == "bin" else _read_cifar_python
    parts, labels, given, keys = [], [], [], []
    for split, names in (("train", _CIFAR_TRAIN), ("test", _CIFAR_TEST)):
        for name in names:
            path = folder / (name + ".bin" if kind == "bin" else name)
            if not path.is_file():
                raise DataError(f"CIFAR-10 batch missing: {path}")
            data, lab = reader(path)
            if any(not 0 <= v < 10 for v in lab):
                raise DataError(f"corrupt CIFAR-10 batch {path}: label outside 0..9")
            parts.append(data)
            labels += lab
            given += [split] * len(lab)
            keys += [f"{path.name}:{i}" for i in range(len(lab))]
    data = np.concatenate(parts)
    hashes = [content_hash(im.tobytes()) for im in data]
    splits = assign_splits(labels, hashes, given, config)
    records = [Record(k, lab, s, h, 32, 32) for k, lab, s, h in zip(keys, labels, splits, hashes)]
    ds = Dataset(f"cifar10:{root}", str(folder), list(CIFAR10_CLASSES), records,
                 torch.from_numpy(data), 32, flip=True)
    return SourceRead(ds, _rows(ds, 3))


# ---------------------------------------------------------------------------------------------
# Image folders


def _class_dirs(folder: Path) -> list[Path]:
    entries = [p for p in sorted(folder.iterdir()) if not p.name.startswith(".")]
    stray = [p for p in entries if not p.is_dir()]
    if stray:
        raise DataError(f"unexpected file {stray[0]}: images must be inside class sub-folders")
    if not entries:
        raise DataError(f"no class folders in {folder}")
    return entries


def _class_images(folder: Path, strict: bool = True) -> list[Path]:
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    if not strict:
        return files
    for p in files:
        if p.suffix.lower() not in IMAGE_EXTENSIONS:
            raise DataError(f"not an image file: {p} (expected one of "
                            f"{', '.join(sorted(IMAGE_EXTENSIONS))})")
    if not files:
        raise DataError(f"empty class folder: {folder}")
    return files


def list_imagefolder(root: Path, strict: bool = True
                     ) -> tuple[list[str], list[tuple[Path, int, str | None]]]:
    """Class names and (file, label, given split or None) of an image folder.

    Args:
        root: PATH/<class>/<image> or PATH/train|val|test/<class>/<image>.
        strict: refuse empty class folders and non-image files (loading); lenient listing keeps
            them for a validation suite to report.

    Raises:
        DataError: a missing root, files beside the class folders, no class folders, or (strict)
            an empty class folder or a file that is not an image.
    """
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}")
    split_layout = (root / "train").is_dir()
    if split_layout:
        extra = [p for p in root.iterdir() if not p.name.startswith(".") and p.name not in SPLITS]
        if extra:
            raise DataError(f"unexpected {extra[0]}: a split layout holds only train/, val/ and "
                            "test/")
        folders = {s: root / s for s in SPLITS if (root / s).is_dir()}
    else:
        folders = {None: root}
    classes = [p.name for p in _class_dirs(folders.get("train", root))]
    files: list[tuple[Path, int, str | None]] = []
    for split, folder in folders.items():
        for cdir in _class_dirs(folder):
            if cdir.name not in classes:
                raise DataError(f"class folder {cdir} has no counterpart in {root / 'train'}")
            label = classes.index(cdir.name)
            files += [(p, label, split) for p in _class_images(cdir, strict)]
    return classes, files


def _read_imagefolder(config: DataConfig, arg: str, strict: bool) -> SourceRead:
    root = Path(arg).expanduser()
    classes, files = list_imagefolder(root, strict)
    size = config.image_size
    resident = len(files) * 3 * size * size <= config.max_resident_bytes
    rows, pixels = [], []
    for path, label, _ in files:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise DataError(f"cannot read {path}: {e.strerror}") from None
        row = {"path": path.relative_to(root).as_posix(), "label": label,
               "class": classes[label], "sha256": content_hash(data)}
        try:  # a full decode is the corruption check; its pixels are kept when resident
            d = decode(path, size, data)
        except DataError as e:
            if strict:
                raise
            rows.append({**row, "width": 0, "height": 0, "channels": 0, "readable": False,
                         "error": unreadable_reason(e)})
            continue
        rows.append({**row, "width": d.width, "height": d.height, "channels": d.channels,
                     "readable": True, "error": ""})
        if resident:
            pixels.append(d.pixels)
    splits = assign_splits([r["label"] for r in rows], [r["sha256"] for r in rows],
                           [f[2] for f in files], config)
    rows = [{c: {**r, "split": s}[c] for c in COLUMNS} for r, s in zip(rows, splits)]
    records = [Record(r["path"], r["label"], r["split"], r["sha256"], r["width"], r["height"])
               for r in rows if r["readable"]]
    images = (torch.stack(pixels) if pixels else torch.zeros(0, 3, size, size, dtype=torch.uint8)
              ) if resident else None
    ds = Dataset(f"imagefolder:{root}", str(root), classes, records, images, size, flip=True,
                 decode=None if resident else folder_decoder(root, size))
    return SourceRead(ds, rows)


def folder_decoder(root: str | Path, size: int):
    """path relative to `root` -> uint8 (3, size, size): how a streamed folder's images are
    read when a batch needs them."""
    root = Path(root)

    def decode_file(rel: str) -> torch.Tensor:
        return decode(root / rel, size).pixels

    return decode_file
