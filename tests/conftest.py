"""Shared fixtures: real photos from scikit-image, written as real image files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same global RNG state, so a failure reproduces."""
    torch.manual_seed(0)
    np.random.seed(0)


def photo_crops(n: int, seed: int = 0, size: int = 48) -> list[np.ndarray]:
    """`n` distinct RGB crops of scikit-image's bundled photos (astronaut, chelsea, coffee)."""
    from skimage import data

    photos = [data.astronaut(), data.chelsea(), data.coffee()]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = photos[i % len(photos)]
        y = rng.integers(0, img.shape[0] - size)
        x = rng.integers(0, img.shape[1] - size)
        out.append(np.ascontiguousarray(img[y:y + size, x:x + size]))
    return out


def write_imagefolder(root: Path, classes: dict[str, int], seed: int = 0,
                      ext: str = ".png") -> Path:
    """Writes class sub-folders of real photo crops: {class name: number of images}."""
    crops = iter(photo_crops(sum(classes.values()), seed))
    for name, n in classes.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(next(crops)).save(folder / f"{name}_{i}{ext}")
    return root


def kept_images(dataset, split: str | None = None) -> list[tuple[str, str, bytes]]:
    """(class name, split, pixels) of a resident dataset's images (of one split if given), sorted:
    equal for two datasets holding the same images whatever their record and class order (a
    folder orders its classes by name) and their sha256 (of an array or of a PNG file)."""
    return sorted((dataset.classes[r.label], r.split, dataset.images[i].numpy().tobytes())
                  for i, r in enumerate(dataset.records) if split in (None, r.split))


@pytest.fixture
def imagefolder(tmp_path: Path) -> Path:
    return write_imagefolder(tmp_path / "flowers", {"daisy": 12, "rose": 10, "tulip": 11})
