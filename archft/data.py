"""Target datasets: sources, deterministic splits and the manifest.

Sources (`DataConfig.source`):
    digits            scikit-learn's bundled 8x8 handwritten digits (1797 images, offline)
    cifar10:ROOT      CIFAR-10 under ROOT (binary or python version); downloaded only on request
    imagefolder:PATH  PATH/<class>/<image>, or PATH/train|val|test/<class>/<image>

Splits are fixed by a seed and recorded in the manifest. Identical images (same sha256) are kept
in one split, so a carved validation or test split never leaks training images; a user-given
test folder is taken as it is (validation reports leaks there rather than hiding them).
Images are held as uint8 (N, 3, H, W) at `stored_size`; loaders (`archft.loaders`) resize,
augment and normalise per batch on the device.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from archft.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")
# Sources bundled with the installed packages (offline): scikit-learn's digits and the patch
# tasks of `archft.tasks`.
BUNDLED = ("digits", "photos", "textures")
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm", ".pbm"}
# Above this many decoded bytes an image folder is streamed from disk instead of held in memory.
DEFAULT_MAX_RESIDENT_BYTES = 2 << 30


@dataclass(frozen=True)
class DataConfig:
    """How to load a target dataset.

    Attributes:
        source: "digits", "cifar10:ROOT" or "imagefolder:PATH".
        image_size: side of the square model input.
        seed: fixes the carved splits.
        val_fraction: share of the training images carved out for validation (when the source
            has no validation split).
        test_fraction: share of all images carved out for test (when the source has no test
            split).
        download: allow downloading CIFAR-10 when it is missing.
        max_resident_bytes: image folders larger than this (decoded) are streamed from disk.
        flip: random horizontal flips in training (None: the source's default, which is off for
            digits and on otherwise; turn it off for text, digits or anything handed).
        train_per_class: keep at most this many training images per class, drawn by the seed
            (the rest are left out; validation and test are untouched): a few-shot setting,
            the data-poor case transfer learning is for (None: keep all).
    """

    source: str = "digits"
    image_size: int = 32
    seed: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    download: bool = False
    max_resident_bytes: int = DEFAULT_MAX_RESIDENT_BYTES
    flip: bool | None = None
    train_per_class: int | None = None

    def __post_init__(self):
        if self.train_per_class is not None and (
                not isinstance(self.train_per_class, int) or self.train_per_class < 1):
            raise ConfigError(f"train_per_class must be a positive integer, got "
                              f"{self.train_per_class!r}")
        if not isinstance(self.image_size, int) or not 8 <= self.image_size <= 1024:
            raise ConfigError(f"image_size must be an integer in 8..1024, got {self.image_size!r}")
        for name in ("val_fraction", "test_fraction"):
            v = getattr(self, name)
            if not 0 < v < 1:
                raise ConfigError(f"{name} must be in (0, 1), got {v!r}")


@dataclass(frozen=True)
class Record:
    """One manifest row: where an image comes from and what it is."""

    path: str
    label: int
    split: str
    sha256: str
    width: int
    height: int


@dataclass
class Dataset:
    """A loaded dataset: class names, manifest records and (when resident) uint8 images.

    Attributes:
        name: the source string.
        root: directory of the source files ("" for digits).
        classes: class names; labels index into it.
        records: manifest rows, in a fixed order; `images` rows follow the same order.
        images: uint8 (N, 3, stored_size, stored_size), or None when streamed from disk.
        stored_size: side of the stored images.
        flip: whether horizontal flips are a valid augmentation (not for digits).
        decode: for streamed image folders, path -> uint8 (3, S, S) tensor.
    """

    name: str
    root: str
    classes: list[str]
    records: list[Record]
    images: torch.Tensor | None
    stored_size: int
    flip: bool
    decode: Callable[[str], torch.Tensor] | None = field(default=None, repr=False)

    def indices(self, split: str) -> torch.Tensor:
        """Row indices of one split."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}")
        return torch.tensor([i for i, r in enumerate(self.records) if r.split == split],
                            dtype=torch.long)

    def labels(self, split: str) -> torch.Tensor:
        """int64 labels of one split."""
        return torch.tensor([r.label for r in self.records if r.split == split], dtype=torch.long)

    def split_images(self, split: str) -> torch.Tensor:
        """uint8 images of one split (decoding them if the set is streamed)."""
        if self.images is not None:
            return self.images[self.indices(split)]
        return torch.stack([self.decode(r.path) for r in self.records if r.split == split])

    def manifest(self) -> list[dict]:
        """Manifest rows as dicts: path, label, class, split, sha256, width, height."""
        return [{"path": r.path, "label": r.label, "class": self.classes[r.label],
                 "split": r.split, "sha256": r.sha256, "width": r.width, "height": r.height}
                for r in self.records]

    def counts(self) -> dict[str, dict[str, int]]:
        """split -> class name -> number of images."""
        return split_counts(self.classes, ((r.split, r.label) for r in self.records))

    def fingerprint(self) -> str:
        """The module-level `fingerprint` of this dataset."""
        return fingerprint(self.classes,
                           ((r.path, r.label, r.split, r.sha256) for r in self.records))


def split_counts(classes: list[str], items: Iterable[tuple[str, int]]
                 ) -> dict[str, dict[str, int]]:
    """split -> class name -> number of the (split, label) items."""
    out = {s: {c: 0 for c in classes} for s in SPLITS}
    for split, label in items:
        out[split][classes[label]] += 1
    return out


def fingerprint(classes: list[str], items: Iterable[tuple[str, int, str, str]]) -> str:
    """sha256 over class names and every (path, label, split, image sha256): two datasets
    with the same fingerprint hold the same labelled images in the same splits."""
    h = hashlib.sha256(json.dumps(classes).encode())
    for path, label, split, sha256 in items:
        h.update(f"{path}\t{label}\t{split}\t{sha256}\n".encode())
    return h.hexdigest()


def load_dataset(config: DataConfig) -> Dataset:
    """Loads and splits the dataset named by `config.source`.

    Raises:
        ConfigError: unknown source.
        DataError: missing, empty, corrupt or malformed data (the message names the file).
    """
    kind, _, arg = config.source.partition(":")
    loaders = {"digits": _load_digits, "photos": _load_patches, "textures": _load_patches,
               "cifar10": _load_cifar10, "imagefolder": _load_imagefolder}
    if kind not in loaders:
        raise ConfigError(f"unknown dataset {config.source!r}; use {', '.join(BUNDLED)}, "
                          "cifar10:ROOT or imagefolder:PATH")
    if kind in BUNDLED and arg:
        raise ConfigError(f"the {kind} dataset takes no path")
    if kind not in BUNDLED and not arg:
        raise ConfigError(f"dataset {kind} needs a path: {kind}:PATH")
    dataset = loaders[kind](config, arg)
    if config.flip is not None:
        dataset.flip = config.flip
    if config.train_per_class is not None:
        keep = torch.tensor(few_shot([dataset.classes[r.label] for r in dataset.records],
                                     [r.split for r in dataset.records], config))
        dataset.records = [r for r, k in zip(dataset.records, keep) if k]
        if dataset.images is not None:
            dataset.images = dataset.images[keep]
    return dataset


def few_shot(classes: list[str], splits: list[str], config: DataConfig) -> list[bool]:
    """Which images `config.train_per_class` keeps: every validation and test image, and per
    class at most that many training images, drawn by the seed and the class name (so a dataset
    and its materialised image folder keep the same images), all of them if None.

    Args:
        classes: class name of each image, in record order.
        splits: split of each image.
        config: seed and train_per_class.
    """
    if config.train_per_class is None:
        return [True] * len(classes)
    keep = [s != "train" for s in splits]
    for name in sorted(set(classes)):
        rows = [i for i, (c, s) in enumerate(zip(classes, splits)) if c == name and s == "train"]
        rng = np.random.default_rng([config.seed, zlib.crc32(name.encode())])
        for j in rng.permutation(len(rows))[:config.train_per_class]:
            keep[rows[j]] = True
    return keep


# ---------------------------------------------------------------------------------------------
# Splits


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assign_splits(labels: list[int], hashes: list[str], given: list[str | None],
                  config: DataConfig) -> list[str]:
    """Fills in the splits the source did not give, stratified by class and by content.

    Images with the same sha256 form one group that lands in one split. Test is carved from
    unsplit images only if the source gave no test split at all; validation likewise, from train.

    Args:
        labels: label per image.
        hashes: sha256 per image.
        given: the source's split per image ("train", "val", "test"), or None if it has none.
        config: fractions and seed.

    Returns:
        A split per image.
    """
    rng = np.random.default_rng(config.seed)
    out = [g or "train" for g in given]

    def carve(from_split: str, to_split: str, fraction: float) -> None:
        groups: dict[str, list[int]] = {}
        for i, s in enumerate(out):
            if s == from_split:
                groups.setdefault(hashes[i], []).append(i)
        by_class: dict[int, list[str]] = {}
        for h, members in groups.items():  # dict order = first appearance: deterministic
            by_class.setdefault(labels[members[0]], []).append(h)
        for cls in sorted(by_class):
            keys = by_class[cls]
            n = int(round(len(keys) * fraction))
            if n == 0 and len(keys) >= 2:
                n = 1
            for j in rng.permutation(len(keys))[:n]:
                for i in groups[keys[j]]:
                    out[i] = to_split

    if "test" not in given:
        carve("train", "test", config.test_fraction)
    if "val" not in given:
        carve("train", "val", config.val_fraction)
    return out


# ---------------------------------------------------------------------------------------------
# digits


def _load_digits(config: DataConfig, _arg: str) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # 0..16 -> 0..255, grey replicated to RGB.
    raw = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # (N, 8, 8)
    labels = [int(t) for t in bunch.target]
    hashes = [_sha(im.tobytes()) for im in raw]
    splits = assign_splits(labels, hashes, [None] * len(raw), config)
    x = torch.from_numpy(raw)[:, None].expand(-1, 3, -1, -1)
    images = resize_uint8(x, config.image_size)
    records = [Record(f"digits:{i}", labels[i], splits[i], hashes[i], 8, 8)
               for i in range(len(raw))]
    return Dataset("digits", "", [str(c) for c in bunch.target_names], records, images,
                   config.image_size, flip=False)


def _load_patches(config: DataConfig, _arg: str) -> Dataset:
    from archft.tasks import make_patches

    classes, raw, labels, given = make_patches(config.source, config.image_size, config.seed)
    hashes = [_sha(im.tobytes()) for im in raw]
    splits = assign_splits(labels, hashes, given, config)
    s = config.image_size
    records = [Record(f"{config.source}:{i}", labels[i], splits[i], hashes[i], s, s)
               for i in range(len(raw))]
    images = torch.from_numpy(raw).permute(0, 3, 1, 2).contiguous()
    return Dataset(config.source, "", classes, records, images, s, flip=True)


def resize_uint8(x: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Bilinear (antialiased) resize of uint8 (N, C, H, W) images to size x size, in chunks."""
    if x.shape[-2:] == (size, size):
        return x.contiguous()
    out = torch.empty((x.shape[0], x.shape[1], size, size), dtype=torch.uint8)
    for i in range(0, x.shape[0], chunk):
        y = F.interpolate(x[i:i + chunk].float(), size=(size, size), mode="bilinear",
                          align_corners=False, antialias=True)
        out[i:i + chunk] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out


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


def _load_cifar10(config: DataConfig, arg: str) -> Dataset:
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
    hashes = [_sha(im.tobytes()) for im in data]
    splits = assign_splits(labels, hashes, given, config)
    records = [Record(k, lab, s, h, 32, 32) for k, lab, s, h in zip(keys, labels, splits, hashes)]
    return Dataset(f"cifar10:{root}", str(folder), list(CIFAR10_CLASSES), records,
                   torch.from_numpy(data), 32, flip=True)


# ---------------------------------------------------------------------------------------------
# Image folders


def decode_image(path: str | Path, size: int, data: bytes | None = None
                 ) -> tuple[torch.Tensor, int, int]:
    """Decodes an image file to uint8 RGB (3, size, size): shorter side resized to `size`
    (bilinear, antialiased), then centre-cropped.

    Args:
        path: the image file (named in errors).
        size: output side.
        data: the file's bytes, if already read.

    Returns:
        (pixels, original width, original height).

    Raises:
        DataError: the file is not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data) if data is not None else path) as im:
            im.load()
            width, height = im.size
            im = im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(f"corrupt or unreadable image {path}: {e}") from None
    scale = size / min(width, height)
    w, h = max(size, round(width * scale)), max(size, round(height * scale))
    im = im.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=None)
    left, top = (w - size) // 2, (h - size) // 2
    im = im.crop((left, top, left + size, top + size))
    arr = np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()
    return torch.from_numpy(arr), width, height


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


def _load_imagefolder(config: DataConfig, arg: str) -> Dataset:
    root = Path(arg).expanduser()
    classes, files = list_imagefolder(root)

    size = config.image_size
    resident = len(files) * 3 * size * size <= config.max_resident_bytes
    hashes, dims, pixels = [], [], []
    for path, _, _ in files:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise DataError(f"cannot read {path}: {e.strerror}") from None
        hashes.append(_sha(data))
        # A full decode here is the corruption check; its pixels are kept when resident.
        x, w, h = decode_image(path, size, data)
        dims.append((w, h))
        if resident:
            pixels.append(x)
    labels = [f[1] for f in files]
    splits = assign_splits(labels, hashes, [f[2] for f in files], config)
    records = [Record(p.relative_to(root).as_posix(), lab, s, h, w, hh)
               for (p, lab, _), s, h, (w, hh) in zip(files, splits, hashes, dims)]
    images = torch.stack(pixels) if resident else None

    def decode(rel: str) -> torch.Tensor:
        return decode_image(root / rel, size)[0]

    return Dataset(f"imagefolder:{root}", str(root), classes, records, images, size, flip=True,
                   decode=None if resident else decode)
