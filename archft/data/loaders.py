"""Batch loaders: the whole set on the device for small data, streamed files for large data.

Small sets (digits, CIFAR-10, small image folders) live on the device as uint8, as airbench's
CifarLoader does: one `randperm` per epoch on the device, crop/flip/normalise batched on the
device, no DataLoader workers, no per-batch host-device copies. Sets too large to hold are
decoded by DataLoader workers and go through the same device-side transform.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import count
from typing import Iterator

import torch
import torch.nn.functional as F

from archft.core.errors import DataError
from archft.core.rng import generator
from archft.data.dataset import Dataset


@dataclass(frozen=True)
class BatchTransform:
    """uint8 (B, 3, h, w) on the device -> normalised float (B, 3, S, S), optionally augmented.

    Attributes:
        image_size: model input side S (images are resized bilinearly if h != S).
        mean: per-channel mean of the 0..1 pixels.
        std: per-channel std.
        crop_pad: random-crop padding in pixels (0: no crop).
        flip: random horizontal flips.
        channels_last: return channels-last memory format (faster convs on GPU).
    """

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_pad: int = 0
    flip: bool = False
    channels_last: bool = False

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = x.float().div_(255.0)
        s = self.image_size
        if x.shape[-2:] != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False,
                              antialias=True)
        if self.crop_pad:
            x = random_crop(x, self.crop_pad, generator)
        if self.flip:
            mask = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
            x = torch.where(mask[:, None, None, None], x.flip(3), x)
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        x = (x - mean) / std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def random_crop(x: torch.Tensor, pad: int,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-image random crop of zero-padded images, as one gather (no Python loop over images)."""
    b, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), device=x.device, generator=generator)
    ox = torch.randint(0, 2 * pad + 1, (b,), device=x.device, generator=generator)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    return xp[bi, ci, rows, cols]


class DeviceLoader:
    """Iterates over a split held on the device as uint8.

    Args:
        images: uint8 (N, 3, h, w).
        labels: int64 (N,).
        transform: the device-side transform.
        batch_size: images per batch.
        device: where images, labels and batches live.
        shuffle: new permutation every epoch; with `drop_last`, for training.
        drop_last: skip the last incomplete batch.
        seed: seeds the device generator (permutation, crop, flip).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: BatchTransform,
                 batch_size: int, device: torch.device | str = "cpu", shuffle: bool = False,
                 drop_last: bool = False, seed: int = 0):
        self.device = torch.device(device)
        self.images = images.to(self.device, non_blocking=True)
        self.labels = labels.to(self.device, non_blocking=True)
        self.transform, self.batch_size = transform, batch_size
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, seed
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        order = (torch.randperm(n, device=self.device, generator=self.generator) if self.shuffle
                 else torch.arange(n, device=self.device))
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield self.transform(self.images[idx], self.generator), self.labels[idx]

    def stream(self, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless training batches from global step `start_step` on (see `step_batches`);
        the augmentation of batch s uses derive_seed(seed, "aug", s). A run resumed at step s
        therefore sees exactly the batches an uninterrupted run sees."""
        for step, idx in step_batches(len(self.labels), self.batch_size, self.seed, self.device,
                                      start_step):
            g = generator(self.device, self.seed, "aug", step)
            yield self.transform(self.images[idx], g), self.labels[idx]


def step_batches(n: int, batch_size: int, seed: int, device: torch.device | str = "cpu",
                 start_step: int = 0) -> Iterator[tuple[int, torch.Tensor]]:
    """(step, row indices) of endless training batches from global step `start_step` on.

    Batch s is a pure function of (n, batch_size, seed, s): epoch e = s // (n // batch_size)
    uses the permutation derive_seed(seed, "perm", e), and the last incomplete batch of an epoch
    is dropped. Every training path (device-resident, streamed, cached features) draws its rows
    here, so they all see the same images in the same order.

    Raises:
        DataError: fewer than one batch of rows (a user's too-small training split).
    """
    per_epoch, epoch, perm = n // batch_size, -1, None
    if per_epoch == 0:
        raise DataError(f"the training split has {n} images, fewer than one batch of "
                        f"{batch_size}: add images or lower batch_size")
    for step in count(start_step):
        e, i = divmod(step, per_epoch)
        if e != epoch:
            epoch = e
            perm = torch.randperm(n, device=device, generator=generator(device, seed, "perm", e))
        yield step, perm[i * batch_size:(i + 1) * batch_size]


class _Files(torch.utils.data.Dataset):
    def __init__(self, dataset: Dataset, split: str):
        self.paths = [r.path for r in dataset.records if r.split == split]
        self.labels = dataset.labels(split)
        self.decode = dataset.decode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return self.decode(self.paths[i]), self.labels[i]


class _StepBatches(torch.utils.data.Sampler):
    """Endless batch indices from `start_step` on, as `step_batches` draws them."""

    def __init__(self, n: int, batch_size: int, seed: int, start_step: int):
        self.n, self.batch_size, self.seed, self.start = n, batch_size, seed, start_step

    def __iter__(self):
        for _, idx in step_batches(self.n, self.batch_size, self.seed, "cpu", self.start):
            yield idx.tolist()


class StreamingLoader:
    """Decodes files with DataLoader workers into pinned memory, then transforms on the device.

    Args:
        dataset: a streamed `Dataset` (images not resident).
        split: "train", "val" or "test".
        transform: the device-side transform.
        batch_size: images per batch.
        device: target device.
        shuffle: shuffle every epoch.
        drop_last: skip the last incomplete batch.
        seed: seeds shuffling and augmentation.
        workers: decoding processes.
    """

    def __init__(self, dataset: Dataset, split: str, transform: BatchTransform, batch_size: int,
                 device: torch.device | str = "cpu", shuffle: bool = False,
                 drop_last: bool = False, seed: int = 0, workers: int = 2):
        self.device = torch.device(device)
        self.transform, self.seed, self.workers = transform, seed, workers
        self.files, self.batch_size = _Files(dataset, split), batch_size
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.loader = torch.utils.data.DataLoader(
            _Files(dataset, split), batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
            num_workers=workers, pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(seed), persistent_workers=workers > 0)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.loader:
            x = x.to(self.device, non_blocking=True)
            yield self.transform(x, self.generator), y.to(self.device, non_blocking=True)

    def stream(self, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless training batches from `start_step` on; see `DeviceLoader.stream`."""
        loader = torch.utils.data.DataLoader(
            self.files, batch_sampler=_StepBatches(len(self.files), self.batch_size, self.seed,
                                                   start_step),
            num_workers=self.workers, pin_memory=self.device.type == "cuda")
        for step, (x, y) in enumerate(loader, start_step):
            x = x.to(self.device, non_blocking=True)
            g = generator(self.device, self.seed, "aug", step)
            yield self.transform(x, g), y.to(self.device, non_blocking=True)


def make_loader(dataset: Dataset, split: str, transform: BatchTransform, batch_size: int,
                device: torch.device | str = "cpu", train: bool = False, seed: int = 0,
                workers: int = 2) -> DeviceLoader | StreamingLoader:
    """The right loader for a split: device-resident when the images are in memory.

    Args:
        dataset: the loaded dataset.
        split: "train", "val" or "test".
        transform: device-side transform (augmentation only makes sense with `train`).
        batch_size: images per batch.
        device: target device.
        train: shuffle and drop the last incomplete batch.
        seed: seeds shuffling and augmentation.
        workers: decoding processes for streamed sets.
    """
    if dataset.images is not None:
        return DeviceLoader(dataset.split_images(split), dataset.labels(split), transform,
                            batch_size, device, shuffle=train, drop_last=train, seed=seed)
    return StreamingLoader(dataset, split, transform, batch_size, device, shuffle=train,
                           drop_last=train, seed=seed, workers=workers)
