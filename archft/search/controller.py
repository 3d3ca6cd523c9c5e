"""The subnet-sampling controller (seed 000, eq. 1-3) and its REINFORCE update (eq. 4-5).

A stacked LSTM reads an embedding of the previous action (a start token for the first decision)
and one FC+softmax classifier per decision gives pi(a_t | tau_{t-1}); decisions may have
different candidate counts. `sample` returns what it sampled with its log-probability and
entropy; `reinforce_loss` is a pure function, testable with fake rewards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn


@dataclass(frozen=True)
class Rollout:
    """One pass of the controller over all decisions.

    Attributes:
        arch: chosen candidate index per decision.
        log_probs: log pi(a_t | tau_{t-1}) per decision, (T,), differentiable.
        entropies: entropy of each decision's distribution, (T,), differentiable.
        probs: each decision's full distribution (detached), one tensor per decision.
    """

    arch: list[int]
    log_probs: torch.Tensor
    entropies: torch.Tensor
    probs: list[torch.Tensor]

    @property
    def log_prob(self) -> torch.Tensor:
        return self.log_probs.sum()

    @property
    def entropy(self) -> torch.Tensor:
        return self.entropies.sum()


class Controller(nn.Module):
    """LSTM controller over a sequence of categorical decisions.

    Args:
        num_candidates: candidate count of each decision.
        hidden: LSTM and embedding width (ENAS uses 64 for its macro space).
        layers: stacked LSTM cells.
        tanh_constant: logits are squashed to c * tanh(logits / temperature), as in ENAS, so that
            no candidate's probability is driven to exactly 0 or 1 by a few lucky rewards;
            None disables it.
        temperature: see `tanh_constant`.
    """

    def __init__(self, num_candidates: Sequence[int], hidden: int = 64, layers: int = 1,
                 tanh_constant: float | None = 2.5, temperature: float = 5.0):
        super().__init__()
        self.num_candidates = list(num_candidates)
        # Token 0 is the start token; decision t's candidates follow at offsets[t].
        offsets, total = [], 1
        for n in self.num_candidates:
            offsets.append(total)
            total += n
        self.offsets = offsets
        self.embed = nn.Embedding(total, hidden)
        self.cells = nn.ModuleList(nn.LSTMCell(hidden, hidden) for _ in range(layers))
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in self.num_candidates)
        self.tanh_constant, self.temperature = tanh_constant, temperature
        for p in self.parameters():  # ENAS: uniform(-0.1, 0.1); near-uniform policy at start
            nn.init.uniform_(p, -0.1, 0.1)

    def _logits(self, h: torch.Tensor, t: int) -> torch.Tensor:
        logits = self.heads[t](h)
        if self.tanh_constant is not None:
            logits = self.tanh_constant * torch.tanh(logits / self.temperature)
        return logits

    def rollout(self, arch: Sequence[int] | None = None, greedy: bool = False,
                generator: torch.Generator | None = None) -> Rollout:
        """Runs the controller over all decisions.

        Args:
            arch: if given, scores this architecture (teacher forcing) instead of sampling.
            greedy: take the most likely candidate at each step (eq. 1).
            generator: RNG for sampling.

        Returns:
            The rollout.
        """
        dev = self.embed.weight.device
        state = [None] * len(self.cells)
        token = torch.zeros(1, dtype=torch.long, device=dev)
        chosen, log_probs, entropies, probs = [], [], [], []
        for t, _ in enumerate(self.num_candidates):
            x = self.embed(token)
            for i, cell in enumerate(self.cells):
                state[i] = cell(x, state[i])
                x = state[i][0]
            dist = torch.distributions.Categorical(logits=self._logits(x, t)[0])
            if arch is not None:
                a = int(arch[t])
            elif greedy:
                a = int(dist.probs.argmax())
            else:
                a = int(torch.multinomial(dist.probs.detach(), 1, generator=generator))
            chosen.append(a)
            log_probs.append(dist.log_prob(torch.tensor(a, device=dev)))
            entropies.append(dist.entropy())
            probs.append(dist.probs.detach())
            token = torch.tensor([self.offsets[t] + a], device=dev)
        return Rollout(chosen, torch.stack(log_probs), torch.stack(entropies), probs)

    def sample(self, generator: torch.Generator | None = None
               ) -> tuple[list[int], torch.Tensor, torch.Tensor]:
        """Samples an architecture: (arch, log_prob, entropy), the last two differentiable."""
        r = self.rollout(generator=generator)
        return r.arch, r.log_prob, r.entropy

    @torch.no_grad()
    def argmax(self) -> list[int]:
        """The greedy architecture (eq. 1)."""
        return self.rollout(greedy=True).arch

    @torch.no_grad()
    def probabilities(self) -> list[list[float]]:
        """Each decision's distribution along the greedy path, for the history and heat map."""
        return [p.tolist() for p in self.rollout(greedy=True).probs]


def discounted_returns(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    """G_t = sum_{i >= t} gamma^(i - t) r_i for per-decision rewards r (eq. 4)."""
    out = torch.empty_like(rewards)
    running = torch.zeros((), dtype=rewards.dtype, device=rewards.device)
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def reinforce_loss(log_probs: torch.Tensor, entropies: torch.Tensor, reward: float,
                   baseline: float, gamma: float = 1.0, entropy_weight: float = 1e-4
                   ) -> torch.Tensor:
    """REINFORCE with a baseline and an entropy bonus (eq. 5), to be minimised.

    The subnet's accuracy is earned at the last decision (r_T = reward - baseline, the advantage;
    earlier r_t = 0), so G_t = gamma^(T - t) * advantage: with gamma = 1 every decision shares
    the advantage, with gamma < 1 early decisions get less credit.

    Args:
        log_probs: log pi(a_t | tau_{t-1}) per decision, (T,).
        entropies: per-decision entropies, (T,).
        reward: the sampled subnet's reward.
        baseline: the moving-average baseline.
        gamma: discount.
        entropy_weight: weight of the entropy bonus (keeps exploring).

    Returns:
        Scalar loss: -sum_t log pi_t * G_t - entropy_weight * sum_t H_t.
    """
    rewards = torch.zeros_like(log_probs.detach())
    rewards[-1] = reward - baseline
    returns = discounted_returns(rewards, gamma)
    return -(log_probs * returns).sum() - entropy_weight * entropies.sum()


def leave_one_out_baselines(rewards: Sequence[float]) -> list[float]:
    """For K rewards of K rollouts drawn from one policy, each one's baseline: the mean of the
    other K - 1 (RLOO, Kool et al. 2019). Unbiased, since a rollout's baseline does not depend
    on its own action, and with less variance than a moving average when rewards differ by
    little: the rollouts of one update share their validation rows."""
    k = len(rewards)
    if k < 2:
        raise ValueError("a leave-one-out baseline needs at least two rollouts")
    total = sum(rewards)
    return [(total - r) / (k - 1) for r in rewards]


def update_baseline(baseline: float | None, reward: float, decay: float) -> float:
    """Exponential moving average of the reward; the first reward starts it."""
    return reward if baseline is None else decay * baseline + (1 - decay) * reward
