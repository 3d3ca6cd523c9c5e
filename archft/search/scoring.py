"""Rewards of many subnets on a fixed supernet, computing what their prefixes share once.

In the ranking phase (`SearchConfig.ranking`) the supernet's weights no longer change, so a
subnet's reward is a function of its architecture alone: BatchNorm statistics recomputed on the
fixed recalibration batches (`recalibrated_bn`), then a score on the whole validation split
(`ScopedEvaluator.score`). The decisions are ordered by depth, so what a block outputs, on the
recalibration batches and on the validation split alike, depends only on the choices at and
before it: subnets that agree on their first t decisions compute the same activations up to the
block of decision t + 1. Subnets sampled by a settling controller mostly agree on their first
decisions, so those activations are kept (least recently used first out, at most `max_bytes`)
and a reward runs only the blocks from the first one it does not share.

Exact: every block runs the same ops on the same inputs, batch by batch in the same order, as
the plain path; BatchNorm in training mode normalises with the batch's own statistics, so a
block's outputs do not depend on when its running statistics are accumulated. The rewards are
bitwise those of the plain path, and the random draws (dropout in training mode) are the same
(tests/test_search.py).

Measured (docs/BENCHMARKS.md, "Ranking rewards with shared prefixes"; EfficientNet-Lite0 medium
scope, 128 px, 2 CPU threads): the 194 subnets one default search scored take 100 s instead of
137 s (1.36x) with the default 512 MiB (78 prefixes held), 124 s with 128 MiB. Replayed with a
model of the blocks' cost over 9 such searches, an unbounded cache would skip 40-44% of the work.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn

from archft.engine import ScopedEvaluator, autocast, fresh_bn_statistics
from archft.models import run_steps
from archft.nas import unwrap
from archft.space import SearchSpace

# Activations kept for shared prefixes. A prefix of the default search (Lite0 medium, 128 px,
# 300 validation and 256 recalibration images) holds about 6.5 MiB.
MAX_BYTES = 512 << 20


def _contains(step: str, layer: str) -> bool:
    return layer == step or layer.startswith(step + ".")


class PrefixSharingScorer:
    """`score(net)`: the active subnet's reward, as `recalibrated_bn` + `ScopedEvaluator.score`
    compute it, reusing the activations of prefixes scored before.

    Only valid while the supernet's weights are fixed (a new scorer for new weights).

    Args:
        space: the search space (its decisions, in the order of the base's forward steps).
        evaluator: the validation evaluator, with cached features.
        recal: the recalibration batches, as prefix features (empty: no recalibration).
        kind: the score (`SCORES`).
        max_bytes: most bytes of activations kept.
    """

    def __init__(self, space: SearchSpace, evaluator: ScopedEvaluator,
                 recal: Sequence[torch.Tensor], kind: str, max_bytes: int = MAX_BYTES):
        if evaluator.features is None:
            raise ValueError("the evaluator has no cached features")
        self.evaluator, self.recal, self.kind = evaluator, list(recal), kind
        self.max_bytes = max_bytes
        self.steps = evaluator.prefix.spec.steps[evaluator.prefix.start:]
        layers = [d.layer for d in space.decisions]
        owner = [next((j for j, s in enumerate(self.steps) if _contains(s, layer)), None)
                 for layer in layers]
        if None in owner or owner != sorted(owner):
            raise ValueError(f"decisions {layers} are not in the order of the steps "
                             f"{self.steps}")
        # The choices that determine step j's output: the first `depth[j]` of the architecture.
        self.depth = [sum(o <= j for o in owner) for j in range(len(self.steps))]
        self.num_decisions = len(layers)
        self.cache: OrderedDict[tuple, tuple[list[torch.Tensor], list[torch.Tensor]]] = \
            OrderedDict()
        self.bytes = 0
        self.runs = self.skipped = 0  # steps of the blocks: run, and taken from the cache
        self.rows = evaluator.batches()

    def _cacheable(self, j: int) -> bool:
        # The output after the last decision is the whole subnet's: never shared.
        return self.depth[j] < self.num_decisions

    def _lookup(self, arch: tuple[int, ...]):
        for j in reversed(range(len(self.steps))):
            if self._cacheable(j):
                key = (j, arch[:self.depth[j]])
                if key in self.cache:
                    self.cache.move_to_end(key)
                    return j, self.cache[key]
        return -1, None

    def _store(self, key: tuple, acts: tuple[list[torch.Tensor], list[torch.Tensor]]) -> None:
        size = sum(t.numel() * t.element_size() for part in acts for t in part)
        if size > self.max_bytes:
            return
        self.cache[key] = acts
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, old = self.cache.popitem(last=False)
            self.bytes -= sum(t.numel() * t.element_size() for part in old for t in part)

    @torch.no_grad()
    def score(self, net: nn.Module) -> float:
        """The mean per-image score of `net`'s active subnet on the validation split."""
        ev, body = self.evaluator, unwrap(net)
        arch = tuple(net.architecture)
        start, acts = self._lookup(arch)
        if acts is None:
            recal, val = self.recal, [ev.features[rows] for rows in self.rows]
        else:
            recal, val = acts
        try:
            with fresh_bn_statistics(body) if self.recal else contextlib.nullcontext():
                for j in range(start + 1, len(self.steps)):
                    step = self.steps[j:j + 1]
                    if self.recal:
                        body.train()
                        recal = [run_steps(body, step, x) for x in recal]
                    body.eval()
                    with autocast(ev.device, ev.amp):
                        val = [run_steps(body, step, x) for x in val]
                    if self._cacheable(j):
                        self._store((j, arch[:self.depth[j]]), (recal, val))
        finally:
            net.eval()
        total = ev.summed(val, self.rows, self.kind)
        self.runs += len(self.steps) - start - 1
        self.skipped += start + 1
        return total.item() / max(len(ev), 1)  # SYNC: REINFORCE needs it

    @property
    def shared(self) -> float:
        """The fraction of the tail's forward steps taken from the cache so far (the summary's
        `ranking_steps_shared`)."""
        return self.skipped / max(self.runs + self.skipped, 1)
