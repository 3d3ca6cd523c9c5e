"""Pieces shared by the search and fine-tuning loops: transforms, the training step.

Speed rules followed here (measured figures are in docs/BENCHMARKS.md): bf16 autocast and
channels-last on CUDA, data already on the device, and metrics accumulated as device tensors so
that a training step never waits for the GPU; the only host-device syncs are marked SYNC.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from archft.core.rng import derive_seed
from archft.data import DataConfig, Dataset
from archft.data.loaders import BatchTransform
from archft.engine.device import autocast
from archft.engine.features import TrainBatches
from archft.models import Preprocessing


def transforms(pre: Preprocessing, data: DataConfig, dataset: Dataset, device: torch.device
               ) -> tuple[BatchTransform, BatchTransform]:
    """(train transform with crop/flip augmentation, eval transform) for a base and dataset."""
    cl = device.type == "cuda"
    size = data.image_size
    train = BatchTransform(size, pre.mean, pre.std, crop_pad=max(1, size // 8),
                           flip=dataset.flip, channels_last=cl)
    return train, BatchTransform(size, pre.mean, pre.std, channels_last=cl)


def seed_step(seed: int, step: int) -> None:
    """Seeds the global RNG (dropout) for one step: a pure function of (seed, step)."""
    torch.manual_seed(derive_seed(seed, "step", step))


@contextlib.contextmanager
def fresh_bn_statistics(net: nn.Module):
    """Inside the context, every BatchNorm layer of `net` starts from reset statistics and
    accumulates the plain mean of the batches it sees in training mode (momentum None); on
    exit every statistic is as it was."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone(),
              m.momentum) for m in bns]
    try:
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches
        yield
    finally:
        for m, (mean, var, count, momentum) in zip(bns, saved):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(count)
            m.momentum = momentum


@contextlib.contextmanager
def recalibrated_bn(net: nn.Module, inputs: Sequence[torch.Tensor],
                    forward: Callable[[nn.Module, torch.Tensor], torch.Tensor]):
    """Inside the context, the trainable BatchNorm layers of `net`'s active subnet hold
    statistics recomputed from `inputs` (their plain mean, as one-shot NAS recalibrates a
    sampled subnet); on exit every statistic is as it was.

    Args:
        net: a supernet with its architecture set, or any net.
        inputs: batches (images, or cached features with their `forward`).
        forward: `forward(net, x)` -> logits.
    """
    with fresh_bn_statistics(net):
        net.train()
        with torch.no_grad():
            for x in inputs:
                forward(net, x)
        net.eval()
        yield net


def train_step(net: nn.Module, forward: Callable[[nn.Module, torch.Tensor], torch.Tensor],
               batch: tuple[torch.Tensor, torch.Tensor], opt: torch.optim.Optimizer,
               device: torch.device, amp: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step of `net` on a batch (images, or cached features with their `forward`).

    Returns:
        (loss, logits), detached device tensors: reading them is the caller's sync.
    """
    net.train()
    x, y = batch
    with autocast(device, amp):
        logits = forward(net, x)
        loss = F.cross_entropy(logits.float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach(), logits.detach()


class Stepper:
    """The step of every training loop (search and fine-tuning): seed the step's randomness,
    take the step's batch, one SGD step. Training loss and accuracy accumulate as device
    tensors (no sync) until read.

    Args:
        net: the network (supernet or subnet).
        batches: its training batches (cached features or images) and their forward.
        opt: the optimiser over its trainable parameters.
        device: where training runs.
        amp: bf16 autocast on CUDA.
        seed: the run's seed (dropout masks of step s come from (seed, s)).
        start_step: the global step of the first `step` call (a resumed run's).
    """

    def __init__(self, net: nn.Module, batches: TrainBatches, opt: torch.optim.Optimizer,
                 device: torch.device, amp: bool, seed: int, start_step: int = 0):
        self.net, self.forward, self.opt = net, batches.forward, opt
        self.device, self.amp, self.seed = device, amp, seed
        self.stream = batches.stream(start_step)
        self.correct = torch.zeros((), device=device)
        self.loss_sum = torch.zeros((), device=device)
        self.seen = self.losses = 0

    def step(self, step: int) -> torch.Tensor:
        """Trains on batch `step`; returns its labels."""
        seed_step(self.seed, step)
        x, y = next(self.stream)
        loss, logits = train_step(self.net, self.forward, (x, y), self.opt, self.device,
                                  self.amp)
        self.correct += (logits.argmax(1) == y).sum()
        self.loss_sum += loss
        self.seen += len(y)
        self.losses += 1
        return y

    def accuracy(self) -> float:
        """Training accuracy over every step so far."""
        return self.correct.item() / max(self.seen, 1)  # SYNC

    def mean_loss(self) -> float:
        """Mean training loss since the last call (0 before any step), then restarts."""
        value = self.loss_sum.item() / max(self.losses, 1)  # SYNC
        self.loss_sum.zero_()
        self.losses = 0
        return value
