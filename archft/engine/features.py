"""Frozen-prefix features: search and fine-tuning pay only for the scope they train.

Everything before a space's scope is frozen: its parameters get no gradient, its BatchNorm layers
are `FrozenBatchNorm2d`, and no registered base has dropout or another random op there. So the
prefix maps a given input image to the same features for the whole search and fine-tuning; they
are computed once here and training runs only the in-scope tail (and the head) on them.

Exactness:
- Evaluation (validation rewards, val/test curves) has no augmentation: the cached path computes
  exactly what a full forward computes (up to float reassociation across batch sizes).
- Training without augmentation (no crop, no flip): one view per image, and a step on cached
  features has the same loss and gradients as a full-forward step on the same batch (tested to
  1e-5), and `TrainBatches.stream` yields the same batches in the same order as the full path.
- Training with augmentation: the cache holds `views` augmented views per training image, drawn
  once from the seed (each view is a crop/flip the full path could have drawn), and every step
  picks one view per image at random. The full path draws a fresh augmentation every step, so the
  cached path sees a fixed pool of `views` augmentations per image instead: the same distribution
  per draw, less variety over many epochs. It is an approximation; `cache: false` trains exactly
  as before.

Where the cache would not fit (`max_bytes`), or the images are streamed from disk (large
folders), training falls back to full forwards automatically and says so in the log and in the
run's summary (`features`).

Measured (EfficientNet-Lite0, medium scope, 128 px, batch 64, 2 CPU threads; figures and command
in docs/BENCHMARKS.md): a training step on cached features runs several times the images/s of the
full forward, because at 128 px the prefix (stem to stage 5, at 64x64 to 8x8) costs more than the
scope (4x4 maps) forward and backward together.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from archft.core.config import require_positive_ints
from archft.core.rng import generator
from archft.data import Dataset
from archft.data.loaders import BatchTransform, make_loader, step_batches
from archft.engine.device import autocast
from archft.models import BaseSpec, run_steps, scope_start
from archft.nas import unwrap

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureCacheConfig:
    """How training reuses the frozen prefix's output.

    Attributes:
        cache: train on cached prefix features when they fit in `max_bytes` (else, and when
            false, every step runs the full network).
        views: augmented views cached per training image (1 when the data has no augmentation).
        max_bytes: largest training-feature cache; above it training uses full forwards.
    """

    cache: bool = True
    views: int = 8
    max_bytes: int = 2 << 30

    def __post_init__(self):
        require_positive_ints(self, "views", "max_bytes")


class FrozenPrefix:
    """A base's forward, split at the scope: `prefix` (frozen) then `tail` (trained).

    Args:
        spec: the base's spec (its forward steps).
        trainable: the space's trainable module paths.
    """

    def __init__(self, spec: BaseSpec, trainable: Sequence[str]):
        self.spec = spec
        self.start = scope_start(spec, trainable)

    def prefix(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Features at the scope boundary of `net` (any net of the space) for inputs `x`."""
        return run_steps(unwrap(net), self.spec.steps[:self.start], x)

    def tail(self, net: nn.Module, features: torch.Tensor) -> torch.Tensor:
        """Logits of `net` from scope-boundary features; `tail(net, prefix(net, x)) == net(x)`."""
        return run_steps(unwrap(net), self.spec.steps[self.start:], features)

    @torch.no_grad()
    def encode(self, net: nn.Module, images: torch.Tensor, transform: BatchTransform,
               device: torch.device, seed_parts: tuple | None = None,
               batch_size: int | None = None) -> torch.Tensor:
        """Prefix features of uint8 images, transformed in batches on `device`.

        Args:
            net: any net of the space.
            images: uint8 (N, 3, h, w), on any device.
            transform: the batch transform (augmenting ones need `seed_parts`).
            device: where the transform runs and the features live.
            seed_parts: the augmentation of the batch at row i uses
                `generator(device, *seed_parts, i)`, so a view is a pure function of the seed.
            batch_size: images per prefix forward (default: `encode_batch_size`).

        Returns:
            Features (N, C, H, W) on `device`.
        """
        body = unwrap(net).eval()
        batch_size = batch_size or encode_batch_size(transform.image_size, device)
        parts = []
        for i in range(0, len(images), batch_size):
            g = generator(device, *seed_parts, i) if seed_parts is not None else None
            parts.append(self.prefix(body, transform(images[i:i + batch_size].to(device), g)))
        return torch.cat(parts)

    @torch.no_grad()
    def feature_bytes(self, net: nn.Module, transform: BatchTransform,
                      device: torch.device) -> int:
        """Bytes of one image's features (a one-image probe through the prefix)."""
        size = transform.image_size
        probe = self.prefix(unwrap(net).eval(), torch.zeros(1, 3, size, size, device=device))
        return probe.numel() * probe.element_size()


def encode_batch_size(image_size: int, device: torch.device) -> int:
    """Images per forward of full-size images without gradients (encoding, evaluation): large
    on a GPU; on a CPU small enough that the activations stay in cache (Lite0 medium prefix at
    128 px, 2 threads: 94 img/s at batch 256, 131 at 64, 490 at 8, 436 at 4; the whole net on
    600 test images: 12.8 s at batch 256, 4.7 s at 10, the same logits bit for bit), i.e.
    about 2^19 input pixels."""
    if device.type == "cuda":
        return 256
    return max(1, (1 << 19) // (3 * image_size * image_size))


def augments(transform: BatchTransform) -> bool:
    """Whether the transform draws random crops or flips."""
    return bool(transform.crop_pad or transform.flip)


@dataclass
class TrainBatches:
    """Endless training batches and the forward that turns one into logits.

    Attributes:
        stream: `stream(start_step)` yields (inputs, labels) from global step `start_step` on.
        forward: `forward(net, inputs)` -> logits; the tail on cached features, else `net(x)`.
        info: what was cached (JSON-ready): cached, views, bytes, seconds, reused (built
            earlier in this process for the same prefix, data and seed), or why not.
    """

    stream: Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]]
    forward: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    info: dict


def _full_forward(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return net(x)


# The last training-feature cache built in this process, by what determines it, so that the
# search, the fine-tuning and the vanilla baseline of one run (or one benchmark seed) build it
# once. One entry: memory stays bounded by one cache.
_LAST: dict[tuple, torch.Tensor] = {}


def _prefix_digest(net: nn.Module, prefix: FrozenPrefix) -> str:
    """A hash of every parameter and buffer the prefix runs with."""
    body, h = unwrap(net), hashlib.blake2b(digest_size=16)
    for step in prefix.spec.steps[:prefix.start]:
        if step.startswith("@"):
            continue
        for key, value in body.get_submodule(step).state_dict().items():
            h.update(f"{step}.{key}{tuple(value.shape)}{value.dtype}".encode())
            h.update(value.detach().reshape(-1).contiguous().cpu().view(torch.uint8).numpy())
    return h.hexdigest()


# Evaluation features built in this process, by what determines them, so that the search, the
# fine-tuning and the vanilla baseline of one run encode each evaluation split once. A few
# entries (a run evaluates on val and test) and bytes; the least recently used goes first, the
# newest always stays.
_EVAL: OrderedDict[tuple, torch.Tensor] = OrderedDict()
_EVAL_ENTRIES = 4
_EVAL_MAX_BYTES = 2 << 30


def eval_features(prefix: FrozenPrefix, net: nn.Module, images: torch.Tensor,
                  transform: BatchTransform, device: torch.device, amp: bool) -> torch.Tensor:
    """`prefix.encode` of an unaugmented split, reused when this process encoded the same
    images with the same prefix weights, transform, device and autocast before."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{tuple(images.shape)}{images.dtype}".encode())
    h.update(images.reshape(-1).contiguous().cpu().view(torch.uint8).numpy())
    key = (prefix.spec.name, prefix.start, _prefix_digest(net, prefix), h.hexdigest(),
           transform, str(device), amp)
    features = _EVAL.get(key)
    if features is None:
        with autocast(device, amp):
            features = prefix.encode(net, images, transform, device)
    _EVAL[key] = features
    _EVAL.move_to_end(key)
    while len(_EVAL) > 1 and (len(_EVAL) > _EVAL_ENTRIES or sum(
            f.numel() * f.element_size() for f in _EVAL.values()) > _EVAL_MAX_BYTES):
        _EVAL.popitem(last=False)
    return features


def _cached_views(net: nn.Module, prefix: FrozenPrefix, dataset: Dataset, images: torch.Tensor,
                  transform: BatchTransform, views: int, seed: int, device: torch.device,
                  amp: bool) -> tuple[torch.Tensor, bool]:
    """(views, N, C, H, W) prefix features of the training images, and whether they were
    built earlier in this process (`_LAST`) for the same prefix weights, data, views and seed."""
    key = (prefix.spec.name, prefix.start, _prefix_digest(net, prefix), dataset.fingerprint(),
           transform, views, seed, str(device), amp)
    features = _LAST.get(key)
    if features is not None:
        return features, True
    _LAST.clear()
    aug = augments(transform)
    with autocast(device, amp):
        features = torch.stack([prefix.encode(net, images, transform, device,
                                              (seed, "views", v) if aug else None)
                                for v in range(views)])
    _LAST[key] = features
    return features, False


def train_batches(net: nn.Module, spec: BaseSpec, trainable: Sequence[str], dataset: Dataset,
                  transform: BatchTransform, batch_size: int, device: torch.device, seed: int,
                  config: FeatureCacheConfig = FeatureCacheConfig(),
                  amp: bool = True) -> TrainBatches:
    """Training batches for `net`, on cached prefix features when they fit.

    Batch s holds the rows `loaders.step_batches` gives for (seed, s) on both paths. With the
    cache, each row's view is drawn from `generator(device, seed, "view", s)`; view v of every
    image was augmented with `generator(device, seed, "views", v, row)`.

    Args:
        net: any net of the space (its frozen prefix computes the features).
        spec: the base's spec.
        trainable: the space's trainable module paths.
        dataset: the target dataset (train split).
        transform: the training transform (with its augmentation).
        batch_size: images per step.
        device: where batches live.
        seed: seeds batch order, views and augmentation.
        config: the cache settings.
        amp: compute the features under bf16 autocast on CUDA, as the full path would.

    Returns:
        The batches.
    """
    loader = make_loader(dataset, "train", transform, batch_size, device, train=True, seed=seed)
    full = TrainBatches(loader.stream, _full_forward, {"cached": False})
    if not config.cache:
        full.info["reason"] = "off in the configuration"
        return full
    if dataset.images is None:
        full.info["reason"] = "images are streamed from disk"
        log.info("training with full forwards: the images are streamed from disk")
        return full
    prefix = FrozenPrefix(spec, trainable)
    views = config.views if augments(transform) else 1
    images, labels = dataset.split_images("train"), dataset.labels("train").to(device)
    need = views * len(images) * prefix.feature_bytes(net, transform, device)
    if need > config.max_bytes:
        full.info["reason"] = f"needs {need / 2**30:.2f} GiB > max_bytes"
        log.info("training with full forwards: %d views of %d images need %.2f GiB of features, "
                 "more than max_bytes %.2f GiB", views, len(images), need / 2**30,
                 config.max_bytes / 2**30)
        return full
    started = time.perf_counter()
    features, reused = _cached_views(net, prefix, dataset, images, transform, views, seed,
                                     device, amp)
    seconds = time.perf_counter() - started
    log.info("%d view(s) of %d training images cached at the scope boundary: %.0f MiB, %.1f s",
             views, len(images), need / 2**20, seconds)

    def stream(start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for step, idx in step_batches(len(labels), batch_size, seed, device, start_step):
            if views == 1:
                yield features[0, idx], labels[idx]
                continue
            v = torch.randint(views, (len(idx),), device=device,
                              generator=generator(device, seed, "view", step))
            yield features[v, idx], labels[idx]

    return TrainBatches(stream, prefix.tail, {"cached": True, "views": views, "bytes": need,
                                              "seconds": round(seconds, 2), "reused": reused})
