"""Offline target tasks cut from the photographs bundled with scikit-image and scikit-learn.

Nothing is downloaded: every source image ships inside the installed packages. Each task is
"which source image is this patch from?":

    photos    10 classes: colour photographs (astronaut, cat, coffee, rocket, Hubble deep field,
              immunohistochemistry, retina, motorcycle; scikit-learn's china and flower)
    textures  6 classes: grey textures and micrographs (brick, grass, gravel, moon surface,
              cells, coins), each patch rotated by a multiple of 90 degrees and maybe mirrored

Each source is cut into a 4 x 4 grid of tiles; 10 tiles are for training, 3 for validation and
3 for test (drawn from the seed), and every patch lies inside one tile. So no validation or
test patch overlaps a training patch (a model must recognise a photograph or texture from parts
of it that it has not seen), while validation and test both sample several regions of every
source, so that what is chosen on validation carries over to test. (With one band per split,
tried first, validation and test were two different regions of each photo and disagreed on
which model was better.) Patches are squares of 10-20% (photos) or 2.5-4.5% (textures) of the
source's shorter side (at most a tile), resized to the stored size; their count per class and
split is fixed (`TASKS`; `DataConfig.patches` and `patch_side` change both, e.g. 300 100 200
patches of 5-10% for a task with more data and larger evaluation splits).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from archft.core.errors import DataError

GRID = 4
SPLIT_TILES = (("train", 10), ("val", 3), ("test", 3))


@dataclass(frozen=True)
class PatchTask:
    """A patch-classification task.

    Attributes:
        sources: class name -> the bundled image (a loader returning uint8 HxW or HxWx3).
        per_split: patches per class in train, val and test.
        side: patch side as a (min, max) fraction of the source's shorter side.
        grey: convert to grey (replicated to RGB).
        rotate: rotate each patch by a random multiple of 90 degrees and mirror half of them.
    """

    sources: dict[str, Callable[[], np.ndarray]]
    per_split: dict[str, int]
    side: tuple[float, float]
    grey: bool = False
    rotate: bool = False


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        try:
            from skimage import data
        except ImportError:
            raise DataError("this task is cut from scikit-image's bundled photographs; "
                            "pip install scikit-image") from None
        return getattr(data, name)()
    return load


def _sklearn(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(name)
    return load


def _motorcycle() -> np.ndarray:
    return _skimage("stereo_motorcycle")()[0]


TASKS: dict[str, PatchTask] = {
    "photos": PatchTask(
        {"astronaut": _skimage("astronaut"), "cat": _skimage("chelsea"),
         "coffee": _skimage("coffee"), "rocket": _skimage("rocket"),
         "hubble": _skimage("hubble_deep_field"), "ihc": _skimage("immunohistochemistry"),
         "retina": _skimage("retina"), "motorcycle": _motorcycle,
         "china": _sklearn("china.jpg"), "flower": _sklearn("flower.jpg")},
        {"train": 120, "val": 30, "test": 60}, side=(0.10, 0.20)),
    "textures": PatchTask(
        {"brick": _skimage("brick"), "grass": _skimage("grass"), "gravel": _skimage("gravel"),
         "moon": _skimage("moon"), "cells": _skimage("cell"), "coins": _skimage("coins")},
        {"train": 120, "val": 30, "test": 60}, side=(0.025, 0.045), grey=True, rotate=True),
}


def _rgb(image: np.ndarray, grey: bool) -> np.ndarray:
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = image[..., :3]
    if grey:
        g = np.rint(image @ np.array([0.299, 0.587, 0.114])).clip(0, 255).astype(np.uint8)
        image = np.repeat(g[..., None], 3, axis=2)
    return np.ascontiguousarray(image)


def _tiles(rng: np.random.Generator) -> dict[str, list[tuple[int, int]]]:
    """(row, column) of the grid tiles of each split."""
    order = [divmod(int(i), GRID) for i in rng.permutation(GRID * GRID)]
    tiles, start = {}, 0
    for split, count in SPLIT_TILES:
        tiles[split] = order[start:start + count]
        start += count
    return tiles


def make_patches(task: str, size: int, seed: int = 0,
                 per_split: Sequence[int] | None = None, side: Sequence[float] | None = None
                 ) -> tuple[list[str], np.ndarray, list[int], list[str]]:
    """Cuts a task's patches.

    Args:
        task: a name in `TASKS`.
        size: side of the returned patches.
        seed: fixes tiles, positions, sizes and rotations.
        per_split: patches per class in train, val and test (None: the task's own).
        side: (min, max) patch side as a fraction of the source's shorter side (None: the
            task's own).

    Returns:
        (class names, uint8 images (N, size, size, 3), labels, splits).
    """
    spec = TASKS[task]
    if per_split is not None:
        spec = replace(spec, per_split=dict(zip((s for s, _ in SPLIT_TILES), per_split)))
    if side is not None:
        spec = replace(spec, side=tuple(side))
    rng = np.random.default_rng(seed)
    images, labels, splits = [], [], []
    for label, load in enumerate(spec.sources.values()):
        src = _rgb(load(), spec.grey)
        h, w = src.shape[:2]
        th, tw = h // GRID, w // GRID
        tiles = _tiles(rng)
        for split, count in spec.per_split.items():
            for _ in range(count):
                ty, tx = tiles[split][int(rng.integers(len(tiles[split])))]
                side = int(round(rng.uniform(*spec.side) * min(h, w)))
                side = max(8, min(side, th, tw))
                y = ty * th + int(rng.integers(0, th - side + 1))
                x = tx * tw + int(rng.integers(0, tw - side + 1))
                patch = src[y:y + side, x:x + side]
                if spec.rotate:
                    patch = np.rot90(patch, int(rng.integers(4)))
                    if rng.random() < 0.5:
                        patch = patch[:, ::-1]
                im = Image.fromarray(np.ascontiguousarray(patch))
                im = im.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
                images.append(np.asarray(im, dtype=np.uint8))
                labels.append(label)
                splits.append(split)
    return list(spec.sources), np.stack(images), labels, splits
