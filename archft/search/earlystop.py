"""Early stopping of the architecture search (seed 000, section 4.4; seed 001, claims 5 and 12).

The search stops when the controller has settled AND its reward has plateaued:
- settled: every decision's most likely candidate has probability >= tau, or the greedy
  architecture has not changed for `window` consecutive controller updates while every
  decision's top candidate has probability >= min_top_p (an unchanged greedy pick of a
  controller that is still close to uniform says nothing: at the paper's controller learning
  rate it fired in every benchmark run with top probabilities of about 0.17 of 6 candidates,
  and the stopped architecture was never the full-budget one);
- plateau: the mean reward of the last `window` updates exceeds the mean of the `window` before
  by at most `eps`, with confidence: rise + z * SE(rise) <= eps. Rewards of sampled subnets are
  noisy (different candidates, different minibatches), and a plain "rose <= eps" test passes by
  chance while the reward is still climbing (seen on digits: it fired at 64% validation accuracy
  with the reward rising 0.43 -> 0.65); the standard error makes it wait until the reward is
  both flat and steady. The supernet keeps training, so rewards drift up slowly; the paper saw
  the actions fixed at 140 samples and the reward still rising until 180.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from archft.core.errors import ConfigError


@dataclass(frozen=True)
class EarlyStopConfig:
    """Attributes:
        enabled: stop early at all.
        tau: probability a decision's top candidate must reach to count as settled.
        min_top_p: probability every decision's top candidate must reach before an unchanged
            greedy architecture counts as settled (0: any controller, the earlier rule).
        window: W, in controller updates.
        eps: largest rise of the windowed mean reward that still counts as a plateau.
        z: standard errors added to the measured rise before comparing it with eps.
        min_updates: never stop before this many updates.
        min_fraction: never stop in the first part of the budget (in supernet steps): a
            supernet trained for a few steps ranks candidates by how far their remapped
            weights start ahead, not by what they can learn (seen on digits: a stop at step
            26 of 200).
        dry_run: record where the search would stop and the architecture it would pick then,
            but run the whole budget (to check the early stop against a full search).
    """

    enabled: bool = True
    tau: float = 0.9
    min_top_p: float = 0.0
    window: int = 50
    eps: float = 0.005
    z: float = 1.0
    min_updates: int = 100
    min_fraction: float = 0.25
    dry_run: bool = False

    def __post_init__(self):
        for name in ("tau", "min_top_p", "min_fraction"):
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not 0 <= value <= 1:
                raise ConfigError(f"early_stop.{name} must be a number in [0, 1], got "
                                  f"{value!r}")


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _var(xs: list[float]) -> float:
    m = _mean(xs)
    return sum((x - m) ** 2 for x in xs) / max(len(xs) - 1, 1)


@dataclass
class EarlyStopper:
    """Feeds on one controller update at a time; `update` returns True once it fires."""

    config: EarlyStopConfig
    budget: int | None = None
    # Updates before this step are ignored (a search's ranking phase, `SearchConfig.ranking`:
    # the stop judges the controller on the fixed supernet only, its windows and min_updates
    # counted from the phase's first round).
    start: int = 0
    rewards: list[float] = field(default_factory=list)
    greedy: list[tuple[int, ...]] = field(default_factory=list)
    fired_at: int | None = None
    reason: str = ""
    # The greedy architecture at the end of the round that fired: what a stopped search picks.
    arch_at_stop: list[int] | None = None

    def settled(self, probs: list[list[float]]) -> str:
        w = self.config.window
        if all(max(p) >= self.config.tau for p in probs):
            return f"every decision's top candidate has p >= {self.config.tau}"
        confident = all(max(p) >= self.config.min_top_p for p in probs)
        if confident and len(self.greedy) >= w and len(set(self.greedy[-w:])) == 1:
            return (f"greedy architecture unchanged for {w} updates"
                    + (f" with top p >= {self.config.min_top_p}" if self.config.min_top_p else ""))
        return ""

    def plateaued(self) -> bool:
        w = self.config.window
        if len(self.rewards) < 2 * w:
            return False
        recent, before = self.rewards[-w:], self.rewards[-2 * w:-w]
        rise = _mean(recent) - _mean(before)
        se = ((_var(recent) + _var(before)) / w) ** 0.5
        return rise + self.config.z * se <= self.config.eps

    def update(self, step: int, reward: float, probs: list[list[float]],
               greedy: list[int]) -> bool:
        """Records one controller update.

        Args:
            step: the search step (supernet iterations so far).
            reward: the update's reward.
            probs: per-decision distributions along the greedy path.
            greedy: the greedy architecture.

        Returns:
            True if the search should stop now.
        """
        if step < self.start:  # judged on the ranking phase's own updates only
            return False
        self.rewards.append(float(reward))
        self.greedy.append(tuple(greedy))
        if self.fired_at is not None:
            if step == self.fired_at:  # the round that fired goes on: the pick is its last
                self.arch_at_stop = list(greedy)
            return True
        if not self.config.enabled:
            return False
        if len(self.rewards) < self.config.min_updates:
            return False
        if self.budget is not None and step < self.config.min_fraction * self.budget:
            return False
        why = self.settled(probs)
        if why and self.plateaued():
            self.fired_at, self.arch_at_stop = step, list(greedy)
            self.reason = (f"{why}; reward plateaued (windowed mean rose <= {self.config.eps} "
                           f"at {self.config.z:g} standard errors)")
            return True
        return False

    def state_dict(self) -> dict:
        return {"rewards": list(self.rewards), "greedy": [list(g) for g in self.greedy],
                "fired_at": self.fired_at, "reason": self.reason,
                "arch_at_stop": self.arch_at_stop}

    def load_state_dict(self, state: dict) -> None:
        self.rewards = [float(r) for r in state["rewards"]]
        self.greedy = [tuple(int(a) for a in g) for g in state["greedy"]]
        self.fired_at, self.reason = state.get("fired_at"), state.get("reason", "")
        self.arch_at_stop = state.get("arch_at_stop")
