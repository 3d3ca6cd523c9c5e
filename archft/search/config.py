"""Search hyper-parameters (`SearchConfig`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from archft.core.config import from_plain, require_positive_ints
from archft.core.errors import ConfigError
from archft.engine.evaluator import SCORES
from archft.engine.features import FeatureCacheConfig
from archft.search.earlystop import EarlyStopConfig
from archft.search.objective import CostConfig

STRATEGIES = ("reinforce", "random", "darts")
FINALS = ("greedy", "best_scored")
SAMPLINGS = ("controller", "fair")


@dataclass(frozen=True)
class SearchConfig:
    """Search hyper-parameters; defaults follow seed 000 Table 2 where it gives them.

    Attributes:
        strategy: "reinforce", "random" or "darts".
        budget: supernet training steps (the early stop may end sooner).
        batch_size: supernet batch (64, Table 2).
        lr: supernet SGD learning rate (5e-2, Table 2).
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        controller_lr: controller Adam learning rate (3.5e-4, Table 2).
        controller_every: supernet steps per round.
        controller_steps: controller updates per round (ENAS trains its controller for many
            updates between shared-weight phases; updates are cheap here because rewards reuse
            the frozen prefix's cached validation features).
        controller_samples: rollouts per controller update. With one (the paper's), the
            advantage is the reward minus a moving-average baseline; with K > 1, each of the K
            rollouts is rewarded on the same validation rows and its advantage is its reward
            minus the mean of the other K - 1 (a leave-one-out baseline), and the update
            follows their mean gradient: less variance per update, K rewards' cost (rewards
            of the ranking phase are remembered, so repeats cost nothing there).
        controller_hidden: LSTM width.
        controller_layers: stacked LSTM cells.
        tanh_constant: logit squashing of the controller (None: off).
        baseline_decay: decay of the moving-average reward baseline.
        entropy_weight: weight of the entropy bonus.
        gamma: discount of eq. 4.
        reward: what a sampled subnet earns on validation images (`archft.engine.SCORES`):
            "accuracy" (the paper's), "neg_loss" (minus the mean cross-entropy) or "margin"
            (mean p(true) - max p(other)). Accuracy saturates when the supernet classifies
            nearly every validation image; the other two keep ranking subnets then.
        reward_batch: validation images per reward (the whole split if smaller).
        bn_recalibration: before its reward, a subnet's in-scope BatchNorm statistics are
            recomputed from this many fixed training batches (0: use the running statistics,
            which mix every subnet the supernet trained).
        warmup: fraction of the budget trained with fair sampling before the controller (or
            the DARTS architecture weights) starts to learn; no early stop before it ends.
            Remapped candidates that preserve the base's function start ahead, and a
            controller learning from the first step locks onto that head start.
        ranking: fraction of the budget, at its end, in which the supernet no longer trains:
            each of those steps is only a round of architecture updates on fixed weights (the
            decoupled ranking of one-shot NAS, as in SPOS). While the supernet trains, every
            candidate's reward drifts and the controller follows it; on fixed weights its
            rewards are stationary. No early stop before this
            phase begins, and the stop judges only the updates of the phase (0: the supernet
            trains at every step, the paper's alternation).
        final: how REINFORCE picks its architecture: "greedy" (the controller's most likely
            one, eq. 1) or "best_scored" (needs a ranking phase: the subnet with the best
            reward among those the controller sampled there, each scored once on the whole
            validation split; as ENAS derives its architecture from its controller's samples).
            With near-equal subnets the controller's greedy choice keeps flipping between them
            to the end; the best scored one changes only when a better subnet is found. The
            early stop then watches the best scored subnet. Random search and DARTS keep their
            own (the best of `random_samples`, the argmax of the architecture weights).
        sampling: how a single-path strategy picks the subnet of a supernet training step
            after the warm-up: "controller" (the strategy's own: the controller's sample for
            REINFORCE as in ENAS, uniform for random search) or "fair" (every candidate of
            every decision exactly once per cycle of its candidate count, as FairNAS; the
            controller then only searches).
        random_samples: architectures the random strategy compares at the end.
        darts_steps: architecture-weight updates per round for DARTS (one per weight step as
            in Liu et al.: each costs a forward and backward through every candidate), each
            on a validation batch of `batch_size` images.
        darts_lr: Adam learning rate of the DARTS architecture weights.
        darts_weight_decay: their weight decay.
        cost: how the objective weighs an architecture's multiply-adds
            (`archft.search.objective`; weight 0: accuracy only).
        early_stop: early-stopping criterion.
        features: training on cached frozen-prefix features (`archft.engine.features`).
        checkpoint_every: steps between checkpoints.
        seed: seeds everything.
        device: "auto", "cpu" or "cuda".
        amp: bf16 autocast on CUDA.
        progress: progress bar (None: only on a terminal).
    """

    strategy: str = "reinforce"
    budget: int = 200
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 1e-4
    controller_lr: float = 3.5e-4
    controller_every: int = 1
    controller_steps: int = 5
    controller_samples: int = 1
    controller_hidden: int = 64
    controller_layers: int = 1
    tanh_constant: float | None = 2.5
    baseline_decay: float = 0.95
    entropy_weight: float = 1e-4
    gamma: float = 1.0
    reward: str = "accuracy"
    reward_batch: int = 256
    bn_recalibration: int = 0
    warmup: float = 0.0
    ranking: float = 0.0
    final: str = "greedy"
    sampling: str = "controller"
    random_samples: int = 20
    darts_steps: int = 1
    darts_lr: float = 3e-4
    darts_weight_decay: float = 1e-3
    cost: CostConfig = field(default_factory=CostConfig)
    early_stop: EarlyStopConfig = field(default_factory=EarlyStopConfig)
    features: FeatureCacheConfig = field(default_factory=FeatureCacheConfig)
    checkpoint_every: int = 50
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    progress: bool | None = None

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"unknown strategy {self.strategy!r}; choose one of "
                              f"{', '.join(STRATEGIES)}")
        if self.reward not in SCORES:
            raise ConfigError(f"unknown reward {self.reward!r}; choose one of "
                              f"{', '.join(SCORES)}")
        if self.cost.form == "mnas" and self.cost.active and self.reward != "accuracy":
            raise ConfigError(f"cost form 'mnas' multiplies the reward, so it needs a positive "
                              f"one (reward: accuracy), not {self.reward!r}; use form: log")
        if self.final not in FINALS:
            raise ConfigError(f"unknown final {self.final!r}; choose one of "
                              f"{', '.join(FINALS)}")
        if self.final == "best_scored" and self.strategy == "reinforce" and not self.ranking:
            raise ConfigError("final=best_scored needs a ranking phase (ranking > 0): only "
                              "there are subnets scored on fixed weights to compare")
        if self.sampling not in SAMPLINGS:
            raise ConfigError(f"unknown sampling {self.sampling!r}; choose one of "
                              f"{', '.join(SAMPLINGS)}")
        if not 0 <= self.warmup < 1:
            raise ConfigError(f"warmup must be a fraction in [0, 1), got {self.warmup!r}")
        if not 0 <= self.ranking < 1 or self.warmup + self.ranking > 1:
            raise ConfigError(f"ranking must be a fraction in [0, 1) with warmup + ranking <= 1, "
                              f"got ranking={self.ranking!r}, warmup={self.warmup!r}")
        if not isinstance(self.bn_recalibration, int) or self.bn_recalibration < 0:
            raise ConfigError(f"bn_recalibration must be an integer >= 0, got "
                              f"{self.bn_recalibration!r}")
        require_positive_ints(self, "budget", "batch_size", "controller_every",
                              "controller_steps", "controller_samples", "darts_steps",
                              "reward_batch", "random_samples",
                              "checkpoint_every")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SearchConfig":
        """Builds a config from plain data (YAML/JSON), refusing unknown fields."""
        return from_plain(cls, data, "search", early_stop=EarlyStopConfig,
                          features=FeatureCacheConfig, cost=CostConfig)
