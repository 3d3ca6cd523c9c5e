"""A loaded dataset: class names, records (the manifest rows) and, when resident, its pixels.

Images are held as uint8 (N, 3, H, W) at `stored_size`; loaders (`archft.data.loaders`) resize,
augment and normalise per batch on the device. The fingerprint identifies the labelled images
and their splits, whatever read them (a survey of the files, a load, an artifact store).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch

from archft.data.config import SPLITS, DataConfig


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
        config: the configuration it was loaded with (None for a hand-made dataset).
        provenance: where the files came from beyond the source string (a pipeline's ingest
            records the DVC hash and the source's version here).
    """

    name: str
    root: str
    classes: list[str]
    records: list[Record]
    images: torch.Tensor | None
    stored_size: int
    flip: bool
    decode: Callable[[str], torch.Tensor] | None = field(default=None, repr=False)
    config: DataConfig | None = None
    provenance: dict = field(default_factory=dict)

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



def content_hash(data: bytes) -> str:
    """sha256 of an image's bytes (a file's, or a decoded array's): equal images share a split."""
    return hashlib.sha256(data).hexdigest()
