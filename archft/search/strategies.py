"""Search strategies: how a supernet step's subnet is chosen, what a round of architecture
updates does, and how the final architecture is picked.

    reinforce  ENAS-style (seed 000, 3.1): every step trains the supernet on a subnet sampled by
               the LSTM controller; every round the controller samples subnets, earns their
               reward on VALIDATION images and takes REINFORCE steps against its own
               moving-average baseline. Its greedy architecture feeds the early stop.
    random     uniform sampling, then the best of `random_samples` architectures on the
               validation split (Li and Talwalkar); its per-round rewards are only logged.
    darts      first-order DARTS (seed 003, 2.2): the supernet runs the softmax(alpha)-weighted
               sum of every candidate; weights step on train batches, alphas on validation
               batches, with the cost term lambda * log_tau(E_alpha[MAdds]) added to their
               loss when `search.cost.weight` > 0; argmax at the end.

REINFORCE and random search take the cost into the reward instead (`SearchRun.reward`).

Each strategy owns its round (how many updates, on which validation rows), whether the early
stop applies to it, and its state (controller and baseline, or alphas); each update is a typed
`Update`, one row of `search_history.jsonl`. Every random draw is a pure function of
(seed, purpose, step), so a resumed search replays the uninterrupted one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from archft.core.rng import derive_seed, generator
from archft.engine.evaluator import ScopedEvaluator
from archft.nas import Supernet
from archft.nas.cost import CostTable
from archft.search.config import SearchConfig
from archft.search.controller import (
    Controller,
    leave_one_out_baselines,
    reinforce_loss,
    update_baseline,
)
from archft.search.objective import cost_loss
from archft.space import SearchSpace


@dataclass(frozen=True)
class Update:
    """One architecture update: a row of `search_history.jsonl`.

    Attributes:
        update: its index over the whole search.
        step: supernet steps done when it ran.
        reward: what the update's subnet earned (DARTS: accuracy of the mixture on its batch).
        baseline: REINFORCE's moving-average baseline after it (else None).
        entropy: of the policy (REINFORCE: of the sampled path; DARTS: summed over decisions).
        arch: the architecture it rewarded.
        greedy: the strategy's most likely architecture (None where there is none: random
            search).
        probs: per-decision distributions along the greedy path (uniform for random search).
        pick: what the search would return if it ended now, where that is not `greedy`
            (`SearchConfig.final` "best_scored": the best subnet scored on the fixed supernet).
        samples: with several rollouts per update, each one's [architecture, reward].
    """

    update: int
    step: int
    reward: float
    baseline: float | None
    entropy: float | None
    arch: list[int]
    greedy: list[int] | None
    probs: list[list[float]]
    pick: list[int] | None = None
    samples: list[list] | None = None

    @property
    def choice(self) -> list[int] | None:
        """What the search would return if it ended at this update: the pick, else the
        greedy architecture (what the early stop watches)."""
        return self.pick if self.pick is not None else self.greedy

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Context:
    """What every strategy works with.

    Attributes:
        space: the search space.
        supernet: the weight-sharing supernet.
        config: search hyper-parameters.
        device: where the supernet runs.
        val: the validation evaluator (cached frozen-prefix features).
        reward: the active subnet's reward (`SearchConfig.reward`) on validation rows (all of
            them if None).
        best_scored: the best subnet scored on the fixed supernet so far (None before the
            ranking phase has scored one).
        costs: every architecture's multiply-adds (`archft.nas.cost`).
        cost_target: the MAdds the objective's cost term is measured against.
    """

    space: SearchSpace
    supernet: Supernet
    config: SearchConfig
    device: torch.device
    val: ScopedEvaluator
    reward: Callable[[torch.Tensor | None], float]
    best_scored: Callable[[], list[int] | None]
    costs: CostTable
    cost_target: float


class Strategy:
    """The part of a search that differs between strategies (see the module docstring)."""

    # Trains one subnet per supernet step (False: DARTS trains the weighted mixture).
    single_path = True
    # Whether the early stop watches this strategy's greedy architecture.
    stops_early = True

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.config = ctx.config

    @property
    def updates_per_round(self) -> int:
        return self.config.controller_steps

    @property
    def rows_per_update(self) -> int:
        """Validation rows per update: a reward's sample."""
        return self.config.reward_batch

    def train_arch(self, step: int) -> None:
        """Sets the supernet's subnet (or mixture) for training step `step`."""
        raise NotImplementedError

    def update(self, u: int, step: int, rows: torch.Tensor) -> Update:
        """Architecture update `u`, at `step`, rewarded on validation rows `rows`."""
        raise NotImplementedError

    def round(self, first: int, step: int) -> list[Update]:
        """The architecture updates at the end of a round, numbered from `first`."""
        return [self.update(u, step, self.reward_rows(u))
                for u in range(first, first + self.updates_per_round)]

    def reward_rows(self, u: int) -> torch.Tensor:
        """The validation rows of update `u`: all of them, or a sample drawn from (seed, u)."""
        n, device = len(self.ctx.val), self.ctx.device
        if n <= self.rows_per_update:
            return torch.arange(n, device=device)
        perm = torch.randperm(n, device=device,
                              generator=generator(device, self.config.seed, "reward", u))
        return perm[:self.rows_per_update]

    def final(self, score: Callable[[list[int]], float]) -> list[int]:
        """The searched architecture; `score(arch)` is its reward on the whole validation
        split."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Reinforce(Strategy):
    def __init__(self, ctx: Context):
        super().__init__(ctx)
        c = self.config
        # The controller stays on the CPU: a 64-wide LSTM over <= 17 steps is faster there than
        # as dozens of tiny GPU kernel launches.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(c.seed, "controller"))
            self.controller = Controller([len(d.candidates) for d in ctx.space.decisions],
                                         c.controller_hidden, c.controller_layers,
                                         c.tanh_constant)
        self.opt = torch.optim.Adam(self.controller.parameters(), lr=c.controller_lr)
        self.baseline: float | None = None

    def train_arch(self, step):
        with torch.no_grad():
            arch, _, _ = self.controller.sample(generator("cpu", self.config.seed, "arch", step))
        self.ctx.supernet.set_architecture(arch)

    def update(self, u, step, rows):
        c = self.config
        g = generator("cpu", c.seed, "ctrl", u)
        rolls = [self.controller.rollout(generator=g) for _ in range(c.controller_samples)]
        rewards = []
        for roll in rolls:
            self.ctx.supernet.set_architecture(roll.arch)
            rewards.append(self.ctx.reward(rows))
        if len(rolls) == 1:
            baselines = [rewards[0] if self.baseline is None else self.baseline]
        else:
            baselines = leave_one_out_baselines(rewards)
        loss = sum(reinforce_loss(roll.log_probs, roll.entropies, r, b, c.gamma,
                                  c.entropy_weight)
                   for roll, r, b in zip(rolls, rewards, baselines)) / len(rolls)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        # The history's reward is the rollouts' mean (what the policy earns); its architecture
        # the first rollout's, every rollout in `samples`.
        reward = sum(rewards) / len(rewards)
        self.baseline = update_baseline(self.baseline, reward, c.baseline_decay)
        greedy = self.controller.rollout(greedy=True)
        samples = ([[roll.arch, r] for roll, r in zip(rolls, rewards)] if len(rolls) > 1
                   else None)
        return Update(u, step, reward, self.baseline, float(rolls[0].entropy.detach()),
                      rolls[0].arch, greedy.arch, [p.tolist() for p in greedy.probs],
                      self._best_scored(), samples)

    def _best_scored(self) -> list[int] | None:
        return self.ctx.best_scored() if self.config.final == "best_scored" else None

    def final(self, score):
        best = self._best_scored()
        return best if best is not None else self.controller.argmax()

    def state_dict(self):
        return {"controller": self.controller.state_dict(), "opt": self.opt.state_dict(),
                "baseline": self.baseline}

    def load_state_dict(self, state):
        self.controller.load_state_dict(state["controller"])
        self.opt.load_state_dict(state["opt"])
        self.baseline = state["baseline"]


class Random(Strategy):
    stops_early = False

    def _uniform(self, *parts) -> list[int]:
        g = generator("cpu", self.config.seed, *parts)
        return [int(torch.randint(len(d.candidates), (1,), generator=g))
                for d in self.ctx.space.decisions]

    def train_arch(self, step):
        self.ctx.supernet.set_architecture(self._uniform("arch", step))

    def update(self, u, step, rows):
        arch = self._uniform("ctrl", u)
        self.ctx.supernet.set_architecture(arch)
        reward = self.ctx.reward(rows)
        uniform = [[1 / len(d.candidates)] * len(d.candidates) for d in self.ctx.space.decisions]
        return Update(u, step, reward, None, None, arch, None, uniform)

    def final(self, score):
        space, n = self.ctx.space, self.config.random_samples
        if space.num_subnets <= n:  # small spaces are compared exhaustively
            archs = [[]]
            for d in space.decisions:
                archs = [a + [i] for a in archs for i in range(len(d.candidates))]
        else:
            archs = [self._uniform("final", i) for i in range(n)]
        scores = [score(a) for a in archs]
        return archs[max(range(len(archs)), key=scores.__getitem__)]


class Darts(Strategy):
    single_path = False

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.alphas = [torch.zeros(len(d.candidates), device=ctx.device, requires_grad=True)
                       for d in ctx.space.decisions]
        self.opt = torch.optim.Adam(self.alphas, lr=self.config.darts_lr, betas=(0.5, 0.999),
                                    weight_decay=self.config.darts_weight_decay)

    @property
    def updates_per_round(self) -> int:
        return self.config.darts_steps

    @property
    def rows_per_update(self) -> int:
        # One validation batch per architecture step: Liu et al. use train and validation
        # batches of the same size; each costs a forward and backward through every candidate.
        return self.config.batch_size

    def train_arch(self, step):
        self.ctx.supernet.set_mixture([a.detach().softmax(0) for a in self.alphas])

    def update(self, u, step, rows):
        supernet, val = self.ctx.supernet, self.ctx.val
        supernet.eval()  # alphas learn through fixed BN statistics
        supernet.set_mixture([a.softmax(0) for a in self.alphas])
        y = val.labels[rows]
        logits = val.logits(supernet, rows)
        loss = F.cross_entropy(logits.float(), y)
        cost = self.config.cost
        if cost.active:  # seed 003: + lambda * log_tau(E_alpha[MAdds]) (over the base's)
            probs = [a.softmax(0) for a in self.alphas]
            loss = loss + cost_loss(self.ctx.costs.expected_madds(probs), self.ctx.cost_target,
                                    cost).float()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        reward = (logits.argmax(1) == y).float().mean().item()  # SYNC: history row
        probs = [a.detach().softmax(0) for a in self.alphas]
        entropy = sum(float(-(p * p.clamp_min(1e-12).log()).sum()) for p in probs)
        greedy = [int(p.argmax()) for p in probs]
        return Update(u, step, reward, None, entropy, greedy, greedy,
                      [p.tolist() for p in probs])

    def final(self, score):
        self.ctx.supernet.set_mixture(None)
        return [int(a.argmax()) for a in self.alphas]

    def state_dict(self):
        return {"alphas": [a.detach().cpu() for a in self.alphas], "opt": self.opt.state_dict()}

    def load_state_dict(self, state):
        with torch.no_grad():
            for a, saved in zip(self.alphas, state["alphas"]):
                a.copy_(saved)
        self.opt.load_state_dict(state["opt"])


STRATEGY_CLASSES: dict[str, type[Strategy]] = {"reinforce": Reinforce, "random": Random,
                                               "darts": Darts}


def fair_architecture(space: SearchSpace, seed: int, step: int) -> list[int]:
    """The subnet of supernet step `step` under strict fairness (FairNAS): decision t with n
    candidates runs them in a random order drawn from (seed, t, step // n), so every candidate
    is trained exactly once in every n consecutive steps."""
    arch = []
    for t, d in enumerate(space.decisions):
        n = len(d.candidates)
        cycle, pos = divmod(step, n)
        order = torch.randperm(n, generator=generator("cpu", seed, "fair", t, cycle))
        arch.append(int(order[pos]))
    return arch
