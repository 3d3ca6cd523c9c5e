"""The cost of every architecture of a space, from one table per input size.

No decision changes the shape of what its layer reads or writes (kernels keep their padding,
expansions their output width, a skipped or added block its stride-1 residual shape), so a
subnet's multiply-adds are a constant (everything outside the decisions) plus one entry per
decision for its chosen candidate, each counted once on its real input shape by
`archft.models.cost.count_cost`. `CostTable.of(arch)` is then a sum, exact (tests/test_cost.py
checks it against counting each materialised subnet), and `expected_madds` is the
differentiable expectation under per-decision probabilities that DARTS' cost term needs
(seed 003, section 2.2: task loss + lambda * log_tau(E[MAdds])).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Sequence

import torch

from archft.models.cost import Cost, count_cost
from archft.nas.supernet import build_subnet, build_supernet
from archft.space import SearchSpace


@dataclass(frozen=True)
class CostTable:
    """Multiply-adds and parameters of a space's architectures at one input size.

    Attributes:
        image_size: input side.
        fixed_madds: multiply-adds outside the decisions' layers (same for every subnet).
        fixed_params: parameters outside them.
        scope_fixed_madds: multiply-adds inside the scope's blocks but outside the decisions
            (a ResNet block's other convs and shortcut; 0 for MBConv spaces).
        madds: per decision, per candidate, its multiply-adds.
        params: per decision, per candidate, its parameters.
    """

    image_size: int
    fixed_madds: int
    fixed_params: int
    scope_fixed_madds: int
    madds: tuple[tuple[int, ...], ...]
    params: tuple[tuple[int, ...], ...]

    def of(self, arch: Sequence[int]) -> dict[str, int]:
        """`madds`, `params` and `scope_madds` (the scope's blocks alone) of an architecture."""
        chosen = sum(m[a] for m, a in zip(self.madds, arch))
        return {"madds": self.fixed_madds + chosen,
                "params": self.fixed_params + sum(p[a] for p, a in zip(self.params, arch)),
                "scope_madds": self.scope_fixed_madds + chosen}

    def expected_madds(self, probs: Sequence[torch.Tensor]) -> torch.Tensor:
        """E[MAdds] of an architecture drawn with probabilities `probs[t]` at decision t
        (differentiable in them)."""
        total = torch.zeros((), dtype=torch.float64, device=probs[0].device)
        for p, m in zip(probs, self.madds):
            total = total + (p.double() * torch.tensor(m, dtype=torch.float64,
                                                       device=p.device)).sum()
        return total + self.fixed_madds

    def bounds(self) -> dict[str, int]:
        """The cheapest and the most expensive architecture's multiply-adds."""
        return {"min_madds": self.fixed_madds + sum(min(m) for m in self.madds),
                "max_madds": self.fixed_madds + sum(max(m) for m in self.madds)}


def _decision_inputs(space: SearchSpace, image_size: int) -> tuple[Cost, list[torch.Tensor]]:
    """The base's cost in the space's layout and one example input of each decision's layer."""
    net = build_subnet(dataclasses.replace(space, weights="none"), space.base_architecture
                       or [0] * space.num_decisions)
    inputs: dict[str, torch.Tensor] = {}
    hooks = [net.get_submodule(d.layer).register_forward_pre_hook(
        lambda m, args, name=d.layer: inputs.__setitem__(name, args[0].detach().clone()))
        for d in space.decisions]
    try:
        cost = count_cost(net, image_size)
    finally:
        for h in hooks:
            h.remove()
    return cost, [inputs[d.layer] for d in space.decisions]


@functools.lru_cache(maxsize=16)
def cost_table(space: SearchSpace, image_size: int) -> CostTable:
    """The `CostTable` of `space` at `image_size` (cached: spaces are immutable).

    Each candidate is counted as built by the supernet (remapped from the base), on the input
    its layer receives in the base, so the table is the count of the layers that run.
    """
    skeleton = dataclasses.replace(space, weights="none")
    base_cost, examples = _decision_inputs(skeleton, image_size)
    supernet = build_supernet(skeleton)
    madds, params = [], []
    for layer, x in zip(supernet.choices, examples):
        costs = [count_cost(c, example=x) for c in layer.candidates]
        madds.append(tuple(c.madds for c in costs))
        params.append(tuple(c.params for c in costs))
    base = space.base_architecture or [0] * space.num_decisions
    decided = [d.layer for d in space.decisions]
    in_decisions = base_cost.madds_under(decided)
    scope_blocks = space.trainable[:len(space.trainable) - len(space.spec.tail)]
    chosen_params = sum(p[a] for p, a in zip(params, base))
    return CostTable(image_size, base_cost.madds - in_decisions,
                     base_cost.params - chosen_params,
                     base_cost.madds_under(scope_blocks) - in_decisions,
                     tuple(madds), tuple(params))
