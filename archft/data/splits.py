"""Deterministic splits: carved by a seed, stratified by class, identical images kept together;
and the few-shot selection of training images."""

from __future__ import annotations

import zlib

import numpy as np

from archft.data.config import DataConfig


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

