"""The cost-aware search objective: a subnet's task reward traded against its multiply-adds.

Seed 003 (section 2.2) adds lambda * log_tau(E[MAdds]) to the DARTS loss (lambda = 0.2,
tau = 10); FNA's public code does the same (`sub_obj: flops, log_base 10`). The sampling
strategies (REINFORCE, random search) score one subnet at a time, so they get the same term
on that subnet's MAdds, as a reward: reward - lambda * log_tau(MAdds / target). Dividing by
`target` (by default the base's MAdds) only shifts the loss by a constant, so DARTS' gradients
are the seed's exactly, while a reward of the base is left as it was: a cheaper subnet earns a
bonus, a dearer one pays. MnasNet's multiplicative form, reward * (MAdds / target)^(-lambda), is
offered too (`form: mnas`) for rewards that are positive (accuracy).

`weight: 0` is the accuracy-only search exactly: no term is computed, no reward changes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from archft.core.errors import ConfigError

FORMS = ("log", "mnas")


@dataclass(frozen=True)
class CostConfig:
    """How the search weighs an architecture's cost (`search.cost`).

    Attributes:
        weight: lambda, the weight of the cost term (0: accuracy only).
        base: tau, the base of the logarithm (seed 003: 10).
        target: the MAdds the cost is measured against (None: the base architecture's).
        form: "log" (seed 003, FNA: minus lambda * log_tau(MAdds / target)) or "mnas"
            (MnasNet: times (MAdds / target)^(-lambda); only for positive rewards).
    """

    weight: float = 0.0
    base: float = 10.0
    target: float | None = None
    form: str = "log"

    def __post_init__(self):
        if self.form not in FORMS:
            raise ConfigError(f"unknown cost form {self.form!r}; choose one of "
                              f"{', '.join(FORMS)}")
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ConfigError(f"cost.weight must be a number >= 0, got {self.weight!r}")
        if not (math.isfinite(self.base) and self.base > 1):
            raise ConfigError(f"cost.base must be a number > 1, got {self.base!r}")
        if self.target is not None and not (math.isfinite(self.target) and self.target > 0):
            raise ConfigError(f"cost.target must be a positive number of MAdds, got "
                              f"{self.target!r}")

    @property
    def active(self) -> bool:
        return self.weight > 0

    def to_dict(self) -> dict:
        return asdict(self)


def cost_reward(reward: float, madds: float, target: float, config: CostConfig) -> float:
    """A sampled subnet's reward with its cost term (the reward itself when inactive)."""
    if not config.active:
        return reward
    ratio = madds / target
    if config.form == "mnas":
        return reward * ratio ** (-config.weight)
    return reward - config.weight * math.log(ratio) / math.log(config.base)


def cost_loss(expected_madds: torch.Tensor, target: float, config: CostConfig) -> torch.Tensor:
    """DARTS' cost term: lambda * log_tau(E[MAdds] / target), to add to the task loss."""
    return config.weight * torch.log(expected_madds / target) / math.log(config.base)
