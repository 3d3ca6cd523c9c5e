"""Stage 1, architectural fine-tuning: search the scoped space with a weight-sharing supernet.

Strategies (`SearchConfig.strategy`):
    reinforce  ENAS-style (seed 000, 3.1): every step trains the supernet on a subnet sampled by
               the LSTM controller; every `controller_every` steps the controller samples a subnet,
               earns its accuracy on a VALIDATION minibatch as reward and takes a REINFORCE step.
               The search stops early once the controller has settled and the reward plateaued.
    random     the same supernet training with uniform sampling, then the best of
               `random_samples` architectures on the validation split (Li and Talwalkar).
    darts      first-order DARTS (seed 003, 2.2): the supernet runs the softmax(alpha)-weighted
               sum of every candidate; weights step on train batches, alphas on validation
               batches; argmax at the end.

Every random draw is a pure function of (seed, step), so `resume=True` continues an interrupted
search from its last checkpoint exactly as the uninterrupted search would have gone on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import logging
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from archft.architecture import Architecture
from archft.config import from_plain, require_positive_ints
from archft.controller import Controller, reinforce_loss, update_baseline
from archft.data import DataConfig, Dataset
from archft.device import resolve_device, to_device
from archft.earlystop import EarlyStopConfig, EarlyStopper
from archft.errors import ConfigError
from archft.features import FeatureCacheConfig, train_batches
from archft.io import atomic_write_bytes, atomic_write_json, atomic_write_text, save_safetensors
from archft.plots import action_heatmap, reward_curve
from archft.rng import derive_seed, generator
from archft.space import SearchSpace
from archft.train import (
    SCORES,
    ScopedEvaluator,
    recalibrated_bn,
    seed_step,
    train_step,
    transforms,
)

log = logging.getLogger(__name__)

STRATEGIES = ("reinforce", "random", "darts")
SAMPLINGS = ("controller", "fair")
CHECKPOINT = "checkpoint.pt"
# Fields that may differ between an interrupted run and its resumption.
_RESUMABLE = {"budget", "progress", "device", "checkpoint_every"}


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
        controller_hidden: LSTM width.
        controller_layers: stacked LSTM cells.
        tanh_constant: logit squashing of the controller (None: off).
        baseline_decay: decay of the moving-average reward baseline.
        entropy_weight: weight of the entropy bonus.
        gamma: discount of eq. 4.
        reward: what a sampled subnet earns on validation images (`archft.train.SCORES`):
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
        early_stop: early-stopping criterion.
        features: training on cached frozen-prefix features (`archft.features`).
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
    sampling: str = "controller"
    random_samples: int = 20
    darts_steps: int = 1
    darts_lr: float = 3e-4
    darts_weight_decay: float = 1e-3
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
        if self.sampling not in SAMPLINGS:
            raise ConfigError(f"unknown sampling {self.sampling!r}; choose one of "
                              f"{', '.join(SAMPLINGS)}")
        if not 0 <= self.warmup < 1:
            raise ConfigError(f"warmup must be a fraction in [0, 1), got {self.warmup!r}")
        if not isinstance(self.bn_recalibration, int) or self.bn_recalibration < 0:
            raise ConfigError(f"bn_recalibration must be an integer >= 0, got "
                              f"{self.bn_recalibration!r}")
        require_positive_ints(self, "budget", "batch_size", "controller_every",
                              "controller_steps", "darts_steps", "reward_batch", "random_samples",
                              "checkpoint_every")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SearchConfig":
        """Builds a config from plain data (YAML/JSON), refusing unknown fields."""
        return from_plain(cls, data, "search", early_stop=EarlyStopConfig,
                          features=FeatureCacheConfig)


@dataclass
class _State:
    step: int = 0
    updates: int = 0
    baseline: float | None = None
    images: int = 0
    wall: float = 0.0


class _Strategy:
    """What differs between strategies: how a training step's subnet is chosen, how a
    controller update runs, and how the final architecture is picked."""

    # Trains one subnet per supernet step (False: DARTS trains the weighted mixture).
    single_path = True

    def __init__(self, space: SearchSpace, supernet, config: SearchConfig, device,
                 val: ScopedEvaluator, reward: Callable[[torch.Tensor | None], float]):
        self.space, self.supernet, self.config, self.device = space, supernet, config, device
        self.val = val
        # The active subnet's reward (`SearchConfig.reward`) on validation rows.
        self.reward = reward

    def train_arch(self, step: int) -> None:
        raise NotImplementedError

    def update(self, u: int, idx: torch.Tensor, state: _State) -> dict:
        raise NotImplementedError

    def final(self, score: Callable[[list[int]], float]) -> list[int]:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class _Reinforce(_Strategy):
    def __init__(self, *args):
        super().__init__(*args)
        c = self.config
        # The controller stays on the CPU: a 64-wide LSTM over <= 17 steps is faster there than
        # as dozens of tiny GPU kernel launches.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(c.seed, "controller"))
            self.controller = Controller([len(d.candidates) for d in self.space.decisions],
                                         c.controller_hidden, c.controller_layers,
                                         c.tanh_constant)
        self.opt = torch.optim.Adam(self.controller.parameters(), lr=c.controller_lr)

    def train_arch(self, step):
        with torch.no_grad():
            arch, _, _ = self.controller.sample(generator("cpu", self.config.seed, "arch", step))
        self.supernet.set_architecture(arch)

    def update(self, u, idx, state):
        c = self.config
        roll = self.controller.rollout(generator=generator("cpu", c.seed, "ctrl", u))
        self.supernet.set_architecture(roll.arch)
        reward = self.reward(idx)
        baseline = reward if state.baseline is None else state.baseline
        loss = reinforce_loss(roll.log_probs, roll.entropies, reward, baseline, c.gamma,
                              c.entropy_weight)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        state.baseline = update_baseline(state.baseline, reward, c.baseline_decay)
        greedy = self.controller.rollout(greedy=True)
        return {"reward": reward, "baseline": state.baseline,
                "entropy": float(roll.entropy.detach()), "arch": roll.arch,
                "greedy": greedy.arch, "probs": [p.tolist() for p in greedy.probs]}

    def final(self, score):
        return self.controller.argmax()

    def state_dict(self):
        return {"controller": self.controller.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state):
        self.controller.load_state_dict(state["controller"])
        self.opt.load_state_dict(state["opt"])


class _Random(_Strategy):
    def _uniform(self, *parts) -> list[int]:
        g = generator("cpu", self.config.seed, *parts)
        return [int(torch.randint(len(d.candidates), (1,), generator=g))
                for d in self.space.decisions]

    def train_arch(self, step):
        self.supernet.set_architecture(self._uniform("arch", step))

    def update(self, u, idx, state):
        arch = self._uniform("ctrl", u)
        self.supernet.set_architecture(arch)
        reward = self.reward(idx)
        uniform = [[1 / len(d.candidates)] * len(d.candidates) for d in self.space.decisions]
        return {"reward": reward, "baseline": None, "entropy": None, "arch": arch,
                "greedy": None, "probs": uniform}

    def final(self, score):
        space, n = self.space, self.config.random_samples
        if space.num_subnets <= n:  # small spaces are compared exhaustively
            archs, rest = [[]], space.decisions
            for d in rest:
                archs = [a + [i] for a in archs for i in range(len(d.candidates))]
        else:
            archs = [self._uniform("final", i) for i in range(n)]
        scores = [score(a) for a in archs]
        return archs[max(range(len(archs)), key=scores.__getitem__)]


class _Darts(_Strategy):
    single_path = False

    def __init__(self, *args):
        super().__init__(*args)
        self.alphas = [torch.zeros(len(d.candidates), device=self.device, requires_grad=True)
                       for d in self.space.decisions]
        self.opt = torch.optim.Adam(self.alphas, lr=self.config.darts_lr, betas=(0.5, 0.999),
                                    weight_decay=self.config.darts_weight_decay)

    def train_arch(self, step):
        self.supernet.set_mixture([a.detach().softmax(0) for a in self.alphas])

    def update(self, u, idx, state):
        self.supernet.eval()  # alphas learn through fixed BN statistics
        self.supernet.set_mixture([a.softmax(0) for a in self.alphas])
        y = self.val.labels[idx]
        logits = self.val.logits(self.supernet, idx)
        loss = F.cross_entropy(logits.float(), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        reward = (logits.argmax(1) == y).float().mean().item()  # SYNC: history row
        probs = [a.detach().softmax(0) for a in self.alphas]
        entropy = sum(float(-(p * p.clamp_min(1e-12).log()).sum()) for p in probs)
        greedy = [int(p.argmax()) for p in probs]
        return {"reward": reward, "baseline": None, "entropy": entropy, "arch": greedy,
                "greedy": greedy, "probs": [p.tolist() for p in probs]}

    def final(self, score):
        self.supernet.set_mixture(None)
        return [int(a.argmax()) for a in self.alphas]

    def state_dict(self):
        return {"alphas": [a.detach().cpu() for a in self.alphas], "opt": self.opt.state_dict()}

    def load_state_dict(self, state):
        with torch.no_grad():
            for a, saved in zip(self.alphas, state["alphas"]):
                a.copy_(saved)
        self.opt.load_state_dict(state["opt"])


_STRATEGIES = {"reinforce": _Reinforce, "random": _Random, "darts": _Darts}


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


@contextlib.contextmanager
def _graceful_interrupt():
    """The first Ctrl-C only raises a flag: the search finishes the step and its controller
    round, checkpoints, then raises KeyboardInterrupt. A second Ctrl-C interrupts at once."""
    flag = {"set": False}
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def handler(signum, frame):
        if flag["set"]:
            raise KeyboardInterrupt
        flag["set"] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: flag["set"]
    finally:
        signal.signal(signal.SIGINT, previous)


def _config_mismatch(saved: dict, now: dict) -> str | None:
    for key in sorted(set(saved) | set(now)):
        if key not in _RESUMABLE and saved.get(key) != now.get(key):
            return key
    return None


def run_search(space: SearchSpace, dataset: Dataset, data: DataConfig, config: SearchConfig,
               out: str | Path, resume: bool = False,
               on_step: Callable[[int], None] | None = None,
               init: dict[str, torch.Tensor] | None = None) -> dict:
    """Runs the architecture search and writes its outputs to `out`.

    Outputs: `architecture.json`, `search_history.jsonl` (one row per controller update),
    `action_heatmap.png`, `reward_curve.png`, `summary.json`, `supernet.safetensors` (searched
    weights, for fine-tuning with `--init supernet`), and `checkpoint.pt` while the search is
    unfinished.

    Args:
        space: the search space.
        dataset: the target dataset (train split trains, val split rewards).
        data: its configuration (image size).
        config: search hyper-parameters.
        out: output directory.
        resume: continue from `out/checkpoint.pt`; a finished search is returned as it is and
            an empty `out` starts a new one.
        on_step: called after every completed step (progress hooks, tests).
        init: the supernet's initial state dict (as `build_supernet` of a pipeline stored it);
            the base's pretrained weights are then not loaded again.

    Returns:
        The summary (also written to `summary.json`).

    Raises:
        ConfigError: `out` holds a search and `resume` is False, or the checkpoint was written
            with different settings.
    """
    out = Path(out)
    ckpt_path, summary_path = out / CHECKPOINT, out / "summary.json"
    if resume and summary_path.exists() and not ckpt_path.exists():
        return json.loads(summary_path.read_text())
    if not resume and (ckpt_path.exists() or summary_path.exists()):
        raise ConfigError(f"{out} already holds a search; pass --resume to continue it or "
                          "choose another --out")
    if resume and not ckpt_path.exists():
        log.info("nothing to resume in %s: starting a new search", out)
        resume = False
    out.mkdir(parents=True, exist_ok=True)

    c = config
    inert = space.inert_kernels(data.image_size)
    if inert:
        log.warning("at %d px, %d of %d decisions have kernel candidates that compute the same "
                    "function (feature maps too small), e.g. %s on %s maps: %s", data.image_size,
                    len(inert), space.num_decisions, inert[0]["layer"],
                    "x".join(map(str, inert[0]["input"])), inert[0]["equivalent"][0])
    device = resolve_device(c.device)
    if init is None:
        supernet = space.build_supernet()
    else:
        supernet = dataclasses.replace(space, weights="none").build_supernet()
        supernet.load_state_dict(init)
    supernet = to_device(supernet, device)
    train_tf, eval_tf = transforms(space.spec.preprocessing, data, dataset, device)
    if len(dataset.indices("val")) == 0:
        raise ConfigError("the validation split is empty: the search needs it for rewards")
    val = ScopedEvaluator(supernet, space.spec, space.trainable, dataset.split_images("val"),
                          dataset.labels("val"), eval_tf, device, c.amp)
    batches = train_batches(supernet, space.spec, space.trainable, dataset, train_tf,
                            c.batch_size, device, c.seed, c.features, c.amp)
    # Fixed recalibration batches: every subnet's statistics come from the same images.
    recal = [x for x, _ in itertools.islice(batches.stream(0), c.bn_recalibration)]

    def reward(idx: torch.Tensor | None = None) -> float:
        """The active subnet's reward on validation rows `idx` (all of them if None)."""
        if not recal:
            return val.score(supernet, idx, c.reward)  # SYNC: REINFORCE needs a number
        with recalibrated_bn(supernet, recal, batches.forward):
            return val.score(supernet, idx, c.reward)  # SYNC

    strategy = _STRATEGIES[c.strategy](space, supernet, c, device, val, reward)
    warm = int(c.warmup * c.budget)
    params = list(supernet.trainable_parameters())
    opt = torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
    state = _State()
    stopper = EarlyStopper(c.early_stop if c.strategy != "random" else
                           EarlyStopConfig(enabled=False), budget=c.budget)
    updates_per_round = c.darts_steps if c.strategy == "darts" else c.controller_steps
    history: list[dict] = []
    if resume:
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
        key = _config_mismatch(ckpt["config"], c.to_dict())
        if key is not None:
            raise ConfigError(f"{ckpt_path} was written with {key}="
                              f"{ckpt['config'].get(key)!r}, now {c.to_dict().get(key)!r}")
        supernet.load_state_dict(ckpt["supernet"])
        opt.load_state_dict(ckpt["opt"])
        strategy.load_state_dict(ckpt["strategy"])
        stopper.load_state_dict(ckpt["stopper"])
        state = _State(**ckpt["state"])
        log.info("resuming the search in %s at step %d of %d", out, state.step, c.budget)
        lines = (out / "search_history.jsonl").read_text().splitlines()
        history = [json.loads(line) for line in lines[:ckpt["history_rows"]]]
    # The history file always holds exactly the rows of the state it belongs with.
    atomic_write_text(out / "search_history.jsonl",
                      "".join(json.dumps(h) + "\n" for h in history))

    def save_checkpoint() -> None:
        import io

        buf = io.BytesIO()
        torch.save({"format": 1, "config": c.to_dict(), "state": asdict(state),
                    "history_rows": len(history), "supernet": supernet.state_dict(),
                    "opt": opt.state_dict(), "strategy": strategy.state_dict(),
                    "stopper": stopper.state_dict()}, buf)
        atomic_write_bytes(ckpt_path, buf.getvalue())

    stream = batches.stream(state.step)

    # Validation rows per update: a reward's sample, or for DARTS one batch per architecture
    # step (Liu et al. use train and validation batches of the same size; each costs a forward
    # and backward through every candidate).
    rows_per_update = c.batch_size if c.strategy == "darts" else c.reward_batch

    def reward_rows(u: int) -> torch.Tensor:
        if len(val) <= rows_per_update:
            return torch.arange(len(val), device=device)
        perm = torch.randperm(len(val), device=device,
                              generator=generator(device, c.seed, "reward", u))
        return perm[:rows_per_update]

    show = c.progress if c.progress is not None else None
    bar = tqdm(total=c.budget, initial=state.step, desc=f"search/{c.strategy}", unit="step",
               disable=(not show) if show is not None else None, dynamic_ncols=True)
    run = {"correct": torch.zeros((), device=device), "seen": 0}
    stopped = stopper.fired_at is not None and not c.early_stop.dry_run

    def _step(step: int) -> bool:
        """One supernet step and, at the end of a round, the controller updates; returns
        whether early stopping fired."""
        seed_step(c.seed, step)
        if strategy.single_path and (step < warm or c.sampling == "fair"):
            supernet.set_architecture(fair_architecture(space, c.seed, step))
        else:
            strategy.train_arch(step)
        x, y = next(stream)
        _, logits = train_step(supernet, batches.forward, (x, y), opt, device, c.amp)
        run["correct"] += (logits.argmax(1) == y).sum()
        run["seen"] += len(y)
        state.step, state.images = step + 1, state.images + len(y)
        fired = False
        if state.step <= warm:
            bar.set_postfix(phase="warm-up", refresh=False)
            return fired
        if state.step % c.controller_every:
            return fired
        for _ in range(updates_per_round):
            row = strategy.update(state.updates, reward_rows(state.updates), state)
            row = {"update": state.updates, "step": state.step, **row}
            state.updates += 1
            history.append(row)
            with open(out / "search_history.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            if row["greedy"] is not None:
                fired = stopper.update(state.step, row["reward"], row["probs"], row["greedy"])
        fired = fired and not c.early_stop.dry_run
        post = {"reward": f"{row['reward']:.3f}"}
        if row["entropy"] is not None:
            post["entropy"] = f"{row['entropy']:.2f}"
        post["train_acc"] = f"{run['correct'].item() / max(run['seen'], 1):.3f}"  # SYNC: bar
        bar.set_postfix(post, refresh=False)
        return fired
    started = time.perf_counter()
    wall0 = state.wall
    with _graceful_interrupt() as interrupted:
        try:
            for step in range(state.step, c.budget):
                if stopped:
                    break
                stopped = _step(step)
                bar.update(1)
                state.wall = wall0 + time.perf_counter() - started
                if state.step % c.checkpoint_every == 0 or stopped or interrupted():
                    save_checkpoint()
                if interrupted():
                    raise KeyboardInterrupt
                if on_step is not None:
                    on_step(state.step)
        finally:
            bar.close()

    def score(arch: list[int]) -> float:
        supernet.set_architecture(arch)
        return reward()

    arch = strategy.final(score)
    supernet.set_mixture(None)
    supernet.set_architecture(arch)
    val_acc = val.accuracy(supernet)
    architecture = Architecture.of(space, arch)
    architecture.save(out / "architecture.json")
    save_safetensors(out / "supernet.safetensors", supernet.state_dict(),
                     {"format": "archft-supernet-1"})
    summary = {
        "strategy": c.strategy, "base": space.base, "scope": space.scope,
        "num_decisions": space.num_decisions, "num_subnets": space.num_subnets,
        "budget": c.budget, "steps": state.step, "warmup_steps": warm,
        "stopped_early": stopper.fired_at is not None and not c.early_stop.dry_run,
        "stop_step": stopper.fired_at, "stop_reason": stopper.reason or None,
        "greedy_at_stop": (space.describe(stopper.arch_at_stop)
                           if stopper.arch_at_stop is not None else None),
        "cost_saved": round(1 - state.step / c.budget, 4),
        "early_stop_saving": (round(1 - stopper.fired_at / c.budget, 4)
                              if stopper.fired_at is not None else None),
        "controller_updates": state.updates, "subnets_sampled": state.step + state.updates,
        "images_seen": state.images, "wall_seconds": round(state.wall, 2),
        "device": str(device), "threads": torch.get_num_threads(),
        "features": batches.info, "architecture": architecture.names, "val_accuracy": val_acc,
        "inert_kernel_decisions": inert, "image_size": data.image_size,
        "seed": c.seed, "dataset": dataset.name, "dataset_fingerprint": dataset.fingerprint(),
        "config": c.to_dict(),
    }
    if history:
        action_heatmap(history, [d.layer for d in space.decisions],
                       [d.candidates for d in space.decisions], out / "action_heatmap.png",
                       stopper.fired_at, f"{space.base}/{space.scope} {c.strategy}")
        reward_curve(history, out / "reward_curve.png", stopper.fired_at,
                     f"{space.base}/{space.scope} {c.strategy}")
    atomic_write_json(summary_path, summary)
    ckpt_path.unlink(missing_ok=True)
    return summary
