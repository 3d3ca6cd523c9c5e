"""Evaluation of the nets of one space on a fixed split, on its cached frozen-prefix features;
the per-image scores rewards and curves are made of."""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from archft.data.loaders import BatchTransform
from archft.engine.device import autocast
from archft.engine.features import FrozenPrefix, eval_features


class ScopedEvaluator:
    """Logits and accuracy of nets that share a frozen prefix, on one fixed (unaugmented) split.

    Everything before the scope is frozen, so its output for an image is the same for every
    subnet and every training step: it is computed once here (`features.FrozenPrefix`),
    and each evaluation runs only the in-scope tail. (Lite0, small scope, 32 px, 2 CPU threads:
    a 143-image forward takes 0.24 s, the tail alone a few ms; see docs/BENCHMARKS.md.) When the
    cached features would exceed `max_bytes`, evaluation falls back to full forwards.

    Args:
        net: any net of the space (supernet, subnet or base): its prefix is used.
        spec: the base's spec (for its forward steps).
        trainable: the space's trainable module paths.
        images: uint8 images of the split (N, 3, h, w).
        labels: their labels.
        transform: eval transform.
        device: where features live.
        amp: bf16 autocast on CUDA.
        max_bytes: largest feature cache.
        batch_size: images per forward.
    """

    def __init__(self, net: nn.Module, spec, trainable, images: torch.Tensor,
                 labels: torch.Tensor, transform: BatchTransform, device: torch.device,
                 amp: bool = True, max_bytes: int = 1 << 30, batch_size: int = 256):
        self.prefix = FrozenPrefix(spec, trainable)
        self.device, self.amp = device, amp
        self.labels = labels.to(device)
        self.transform, self.batch_size = transform, batch_size
        self.images = images
        self.features: torch.Tensor | None = None
        with autocast(device, amp):
            fits = self.prefix.feature_bytes(net, transform, device) * len(images) <= max_bytes
        if fits:
            self.features = eval_features(self.prefix, net, images, transform, device, amp)

    def __len__(self) -> int:
        return len(self.labels)

    def logits(self, net: nn.Module, rows: torch.Tensor) -> torch.Tensor:
        """Logits of `net` for rows `rows` of the split: the in-scope tail on the cached
        features, or a full forward when there is no cache. Gradients flow if enabled (DARTS
        trains its architecture weights through this)."""
        with autocast(self.device, self.amp):
            if self.features is not None:
                return self.prefix.tail(net, self.features[rows])
            return net(self.transform(self.images[rows.cpu()].to(self.device)))

    @torch.no_grad()
    def total(self, net: nn.Module, idx: torch.Tensor | None = None,
              kind: str = "accuracy") -> torch.Tensor:
        """Sum of a per-image score (`SCORES`) over the split or its rows `idx`, as a device
        tensor (no sync)."""
        net.eval()
        batches = self.batches(idx)
        return self.summed((self.logits(net, rows) for rows in batches), batches, kind)

    def batches(self, idx: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The row batches an evaluation of the split (or of its rows `idx`) runs, in order."""
        order = idx if idx is not None else torch.arange(len(self.labels), device=self.device)
        return [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def summed(self, logits: Iterable[torch.Tensor], batches: Sequence[torch.Tensor],
               kind: str) -> torch.Tensor:
        """Sum of a per-image score (`SCORES`) of the logits of row batches `batches`, added
        batch by batch in order, as a device tensor (no sync)."""
        per_image = SCORES[kind]
        total = torch.zeros((), device=self.device)
        for out, rows in zip(logits, batches):
            total += per_image(out.float(), self.labels[rows]).sum()
        return total

    def score(self, net: nn.Module, idx: torch.Tensor | None = None,
              kind: str = "accuracy") -> float:
        """Mean per-image score (`SCORES`: accuracy, neg_loss, margin) on the split or rows
        `idx`."""
        n = len(self.labels) if idx is None else len(idx)
        return self.total(net, idx, kind).item() / max(n, 1)  # SYNC: once per evaluation

    def accuracy(self, net: nn.Module, idx: torch.Tensor | None = None) -> float:
        """Top-1 accuracy on the split (or rows `idx`)."""
        return self.score(net, idx, "accuracy")

    @torch.no_grad()
    def correct(self, net: nn.Module) -> list[int]:
        """1 where `net`'s top-1 is right, image by image in the split's order (the same
        logits as `accuracy`, so their mean is it): what a paired test of two models needs."""
        net.eval()
        per_image = [SCORES["accuracy"](self.logits(net, rows).float(), self.labels[rows])
                     for rows in self.batches()]
        return torch.cat(per_image).int().tolist()  # SYNC: once per model


def _margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """p(true class) - the largest other class probability: in [-1, 1], > 0 iff correct."""
    p = logits.softmax(1)
    true = p.gather(1, y[:, None])[:, 0]
    return true - p.scatter(1, y[:, None], -1.0).amax(1)


# Per-image scores of a net on labelled data (higher is better), for evaluation and rewards.
# Accuracy saturates once a supernet classifies every validation image correctly (seen: 99.5%
# for every subnet on a 16-class photo folder), while the loss and the margin keep ranking.
SCORES = {
    "accuracy": lambda logits, y: (logits.argmax(1) == y).float(),
    "neg_loss": lambda logits, y: -F.cross_entropy(logits, y, reduction="none"),
    "margin": _margin,
}
