"""Stage 1, architectural fine-tuning: search the scoped space with a weight-sharing supernet.

A `SearchRun` trains the supernet one step at a time (the step's subnet from the strategy, or
from fair sampling during the warm-up), and at the end of every round lets the strategy update
its architecture choice (`archft.search.strategies`); the early stop watches those updates.
In the ranking phase at the end of the budget (`SearchConfig.ranking`) a step trains nothing:
it is only a round of architecture updates on the fixed supernet.
The run checkpoints every `checkpoint_every` steps; every random draw is a pure function of
(seed, step), so `resume=True` continues an interrupted search exactly as the uninterrupted one
would have gone on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import json
import logging
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from archft.core import rundirs
from archft.core.errors import ConfigError
from archft.core.io import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    save_safetensors,
)
from archft.core.rng import generator
from archft.data import DataConfig, Dataset
from archft.engine import (
    ScopedEvaluator,
    Stepper,
    recalibrated_bn,
    resolve_device,
    to_device,
    train_batches,
    transforms,
)
from archft.engine.plots import action_heatmap, pareto_plot, reward_curve
from archft.nas import build_supernet
from archft.nas.cost import cost_table
from archft.search.config import SearchConfig
from archft.search.earlystop import EarlyStopper
from archft.search.objective import cost_reward
from archft.search.pareto import pareto_points
from archft.search.scoring import PrefixSharingScorer
from archft.search.strategies import STRATEGY_CLASSES, Context, Update, fair_architecture
from archft.space import Architecture, SearchSpace

log = logging.getLogger(__name__)

CHECKPOINT = rundirs.SEARCH.checkpoint
CHECKPOINT_FORMAT = 2
# Fields that may differ between an interrupted run and its resumption.
_RESUMABLE = {"budget", "progress", "device", "checkpoint_every"}


@dataclass
class _State:
    step: int = 0
    updates: int = 0
    images: int = 0
    wall: float = 0.0


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


class SearchRun:
    """One search, from its first (or resumed) step to its outputs.

    Args:
        space: the search space.
        dataset: the target dataset (train split trains, val split rewards).
        data: its configuration (image size).
        config: search hyper-parameters.
        out: output directory.
        init: the supernet's initial state dict (as a pipeline's `build_supernet` stored it);
            the base's pretrained weights are then not loaded again.
    """

    def __init__(self, space: SearchSpace, dataset: Dataset, data: DataConfig,
                 config: SearchConfig, out: Path, init: dict[str, torch.Tensor] | None = None):
        self.space, self.data, self.config, self.out = space, data, config, out
        self.dataset = dataset
        self.inert = space.inert_kernels(data.image_size)
        if self.inert:
            i = self.inert[0]
            log.warning("at %d px, %d of %d decisions have kernel candidates that compute the "
                        "same function (feature maps too small), e.g. %s on %s maps: %s",
                        data.image_size, len(self.inert), space.num_decisions, i["layer"],
                        "x".join(map(str, i["input"])), i["equivalent"][0])
        self.device = resolve_device(config.device)
        self.supernet = to_device(self._supernet(init), self.device)
        self.costs = cost_table(space, data.image_size)
        self.base_arch = space.base_architecture
        self.cost_target = config.cost.target or self.costs.of(
            self.base_arch or [0] * space.num_decisions)["madds"]
        self._data_paths()
        self.strategy = STRATEGY_CLASSES[config.strategy](Context(
            space, self.supernet, config, self.device, self.val, self.reward,
            self.best_scored, self.costs, self.cost_target))
        self.warm = int(config.warmup * config.budget)
        # The first step of the ranking phase (the budget when there is none).
        self.ranking_from = config.budget - int(config.ranking * config.budget)
        self.opt = torch.optim.SGD(list(self.supernet.trainable_parameters()), lr=config.lr,
                                   momentum=config.momentum, weight_decay=config.weight_decay)
        self.stopper = EarlyStopper(config.early_stop, budget=config.budget,
                                    start=self.ranking_from if config.ranking else 0)
        self.state = _State()
        self.history: list[Update] = []
        self.ranked: dict[tuple[int, ...], float] = {}  # task rewards on the fixed supernet
        # Task rewards of subnets scored on validation samples while the supernet trained:
        # architecture -> [sum, count] (the Pareto view's points where no ranking phase is).
        self.sampled: dict[tuple[int, ...], list[float]] = {}
        self.sharing = self._prefix_sharing()

    def _supernet(self, init: dict[str, torch.Tensor] | None):
        if init is None:
            return build_supernet(self.space)
        supernet = build_supernet(dataclasses.replace(self.space, weights="none"))
        supernet.load_state_dict(init)
        return supernet

    def _data_paths(self) -> None:
        """The validation evaluator, the training batches and the BN recalibration batches."""
        c, ds = self.config, self.dataset
        train_tf, eval_tf = transforms(self.space.spec.preprocessing, self.data, ds, self.device)
        if len(ds.indices("val")) == 0:
            raise ConfigError("the validation split is empty: the search needs it for rewards")
        self.val = ScopedEvaluator(self.supernet, self.space.spec, self.space.trainable,
                                   ds.split_images("val"), ds.labels("val"), eval_tf,
                                   self.device, c.amp)
        self.batches = train_batches(self.supernet, self.space.spec, self.space.trainable, ds,
                                     train_tf, c.batch_size, self.device, c.seed, c.features,
                                     c.amp)
        # Fixed recalibration batches: every subnet's statistics come from the same images.
        self.recal = [x for x, _ in itertools.islice(self.batches.stream(0),
                                                     c.bn_recalibration)]

    def reward(self, idx: torch.Tensor | None = None) -> float:
        """The active subnet's objective on validation rows `idx` (all of them if None): its
        task reward (`SearchConfig.reward`) with the cost term of `SearchConfig.cost`
        (`objective.cost_reward`; the task reward itself at weight 0).

        In the ranking phase the weights no longer change, so a subnet's reward is a function of
        its architecture: it is taken on the whole validation split, once per architecture, and
        remembered (a settled controller samples the same few subnets again and again); the
        activations of prefixes shared with subnets scored before are reused
        (`PrefixSharingScorer`, the same rewards bit for bit).
        """
        key = tuple(self.supernet.architecture)
        fixed = self.config.ranking and self.state.step >= self.ranking_from
        if fixed and self.strategy.single_path:
            if key not in self.ranked:
                self.ranked[key] = self._score_fixed()
            return self.objective(key, self.ranked[key])
        task = self._score(idx)
        total = self.sampled.setdefault(key, [0.0, 0])
        total[0] += task
        total[1] += 1
        return self.objective(key, task)

    def objective(self, arch, task_reward: float) -> float:
        """`task_reward` of architecture `arch` with the search's cost term."""
        return cost_reward(task_reward, self.costs.of(arch)["madds"], self.cost_target,
                           self.config.cost)

    def _prefix_sharing(self) -> PrefixSharingScorer | None:
        """The scorer of the fixed supernet's subnets in a ranking phase, where validation and
        recalibration run on cached features."""
        if not (self.config.ranking and self.strategy.single_path):
            return None
        if self.val.features is None or (self.recal and not self.batches.info["cached"]):
            return None
        try:
            return PrefixSharingScorer(self.space, self.val, self.recal, self.config.reward)
        except ValueError as e:
            log.info("ranking rewards without prefix sharing: %s", e)
            return None

    def _score_fixed(self) -> float:
        """The active subnet's reward on the whole validation split of the fixed supernet."""
        if self.sharing is None:
            return self._score(None)
        return self.sharing.score(self.supernet)

    def best_scored(self) -> list[int] | None:
        """The subnet with the best reward on the fixed supernet so far (the first scored of
        equals), or None before the ranking phase has scored one."""
        if not self.ranked:
            return None
        return list(max(self.ranked, key=lambda a: self.objective(a, self.ranked[a])))

    def _score(self, idx: torch.Tensor | None) -> float:
        c = self.config
        if not self.recal:
            return self.val.score(self.supernet, idx, c.reward)  # SYNC: REINFORCE needs it
        with recalibrated_bn(self.supernet, self.recal, self.batches.forward):
            return self.val.score(self.supernet, idx, c.reward)  # SYNC

    # -- checkpoints ----------------------------------------------------------------------------

    def resume(self) -> None:
        """Loads `out/checkpoint.pt` (the history file is cut back to its rows)."""
        path = self.out / CHECKPOINT
        ckpt = torch.load(path, map_location=self.device, weights_only=True)
        if ckpt.get("format") != CHECKPOINT_FORMAT:
            raise ConfigError(f"{path} was written by another archft version (checkpoint "
                              f"format {ckpt.get('format')}); start a new search")
        key = _config_mismatch(ckpt["config"], self.config.to_dict())
        if key is not None:
            raise ConfigError(f"{path} was written with {key}="
                              f"{ckpt['config'].get(key)!r}, now "
                              f"{self.config.to_dict().get(key)!r}")
        self.supernet.load_state_dict(ckpt["supernet"])
        self.opt.load_state_dict(ckpt["opt"])
        self.strategy.load_state_dict(ckpt["strategy"])
        self.stopper.load_state_dict(ckpt["stopper"])
        self.state = _State(**ckpt["state"])
        self.ranked = {tuple(a): r for a, r in ckpt.get("ranked", [])}
        self.sampled = {tuple(a): list(t) for a, t in ckpt.get("sampled", [])}
        log.info("resuming the search in %s at step %d of %d", self.out, self.state.step,
                 self.config.budget)
        lines = (self.out / rundirs.SEARCH.history).read_text().splitlines()
        self.history = [Update(**json.loads(line)) for line in lines[:ckpt["history_rows"]]]

    def checkpoint(self) -> None:
        buf = io.BytesIO()
        torch.save({"format": CHECKPOINT_FORMAT, "config": self.config.to_dict(),
                    "state": asdict(self.state), "history_rows": len(self.history),
                    "supernet": self.supernet.state_dict(), "opt": self.opt.state_dict(),
                    "strategy": self.strategy.state_dict(),
                    "stopper": self.stopper.state_dict(),
                    "ranked": [[list(a), r] for a, r in self.ranked.items()],
                    "sampled": [[list(a), t] for a, t in self.sampled.items()]}, buf)
        atomic_write_bytes(self.out / CHECKPOINT, buf.getvalue())

    # -- the loop -------------------------------------------------------------------------------

    def _set_training_arch(self, step: int) -> None:
        if self.strategy.single_path and (step < self.warm or self.config.sampling == "fair"):
            self.supernet.set_architecture(fair_architecture(self.space, self.config.seed,
                                                             step))
        else:
            self.strategy.train_arch(step)

    def _round(self) -> list[Update]:
        """The strategy's updates at the end of a round, recorded and fed to the early stop."""
        rows = self.strategy.round(self.state.updates, self.state.step)
        self.state.updates += len(rows)
        self.history += rows
        with open(self.out / rundirs.SEARCH.history, "a") as f:
            f.writelines(json.dumps(r.to_json()) + "\n" for r in rows)
        if self.strategy.stops_early:
            for r in rows:
                self.stopper.update(r.step, r.reward, r.probs, r.choice)
        return rows

    def step(self, stepper: Stepper, bar) -> bool:
        """One supernet step and, at the end of a round, the architecture updates; returns
        whether the search stops now."""
        step = self.state.step
        if step < self.ranking_from:
            self._set_training_arch(step)
            self.state.images += len(stepper.step(step))
        self.state.step = step + 1
        if self.state.step <= self.warm:
            bar.set_postfix(phase="warm-up", refresh=False)
            return False
        if self.state.step % self.config.controller_every:
            return False
        last = self._round()[-1]
        post = {"reward": f"{last.reward:.3f}"}
        if last.entropy is not None:
            post["entropy"] = f"{last.entropy:.2f}"
        if step < self.ranking_from:
            post["train_acc"] = f"{stepper.accuracy():.3f}"  # SYNC: progress bar
        else:
            post["phase"] = "ranking"
        bar.set_postfix(post, refresh=False)
        return self.stopped

    @property
    def stopped(self) -> bool:
        return self.stopper.fired_at is not None and not self.config.early_stop.dry_run

    def train(self, on_step: Callable[[int], None] | None = None) -> None:
        """Runs the steps left; Ctrl-C finishes the step, checkpoints and raises."""
        c, state = self.config, self.state
        stepper = Stepper(self.supernet, self.batches, self.opt, self.device, c.amp, c.seed,
                          start_step=state.step)
        bar = tqdm(total=c.budget, initial=state.step, desc=f"search/{c.strategy}",
                   unit="step", disable=(not c.progress) if c.progress is not None else None,
                   dynamic_ncols=True)
        started, wall0 = time.perf_counter(), state.wall
        with _graceful_interrupt() as interrupted:
            try:
                while state.step < c.budget and not self.stopped:
                    stopped = self.step(stepper, bar)
                    bar.update(1)
                    state.wall = wall0 + time.perf_counter() - started
                    if state.step % c.checkpoint_every == 0 or stopped or interrupted():
                        self.checkpoint()
                    if interrupted():
                        raise KeyboardInterrupt
                    if on_step is not None:
                        on_step(state.step)
            finally:
                bar.close()

    # -- outputs --------------------------------------------------------------------------------

    def finish(self) -> dict:
        """Picks the architecture and writes every output; returns the summary."""
        def score(arch: list[int]) -> float:
            self.supernet.set_architecture(arch)
            return self.reward()

        arch = self.strategy.final(score)
        self.supernet.set_mixture(None)
        self.supernet.set_architecture(arch)
        architecture = Architecture.of(self.space, arch)
        architecture.save(self.out / rundirs.SEARCH.architecture)
        save_safetensors(self.out / rundirs.SEARCH.supernet, self.supernet.state_dict(),
                         {"format": "archft-supernet-1"})
        self.final_scored = {} if self.ranked else self._final_scores(arch)
        points = pareto_points(self.space, self.costs, self.ranked or self.final_scored,
                               self.sampled, self.objective)
        summary = self.summary(architecture, self.val.accuracy(self.supernet), points)
        self._pareto_plot(points, arch)
        if self.history:
            rows = [r.to_json() for r in self.history]
            title = f"{self.space.base}/{self.space.scope} {self.config.strategy}"
            action_heatmap(rows, [d.layer for d in self.space.decisions],
                           [d.candidates for d in self.space.decisions],
                           self.out / rundirs.SEARCH.heatmap, self.stopper.fired_at, title)
            reward_curve(rows, self.out / rundirs.SEARCH.reward_curve, self.stopper.fired_at,
                         title)
        atomic_write_json(self.out / rundirs.SEARCH.summary, summary)
        (self.out / CHECKPOINT).unlink(missing_ok=True)
        return summary

    def _final_scores(self, arch: list[int]) -> dict[tuple[int, ...], float]:
        """Where the search scored no single subnet (DARTS trains and rates the mixture), the
        Pareto view's points: the pick, the base and `random_samples` uniform subnets, each on
        the whole validation split of the final supernet."""
        if self.sampled:
            return {}
        g = generator("cpu", self.config.seed, "pareto")
        archs = [arch, *([self.base_arch] if self.base_arch else [])] + [
            [int(torch.randint(len(d.candidates), (1,), generator=g))
             for d in self.space.decisions] for _ in range(self.config.random_samples)]
        scores = {}
        for a in archs:
            if tuple(a) not in scores:
                self.supernet.set_architecture(a)
                scores[tuple(a)] = self._score(None)
        self.supernet.set_architecture(arch)
        return scores

    def _scored(self, arch) -> dict:
        """An architecture's cost and, if it was scored, its task reward (for the plot)."""
        key = tuple(arch)
        reward = self.ranked.get(key, self.final_scored.get(key))
        if reward is None and key in self.sampled and not self.ranked:
            total, n = self.sampled[key]
            reward = total / n
        return {**self.costs.of(key), "reward": reward}

    def _pareto_plot(self, points: list[dict], arch: list[int]) -> None:
        title = f"{self.space.base}/{self.space.scope} {self.config.strategy}"
        if self.config.cost.active:
            title += f", cost weight {self.config.cost.weight:g}"
        pareto_plot(points, self.out / rundirs.SEARCH.pareto,
                    self._scored(self.base_arch) if self.base_arch else None,
                    self._scored(arch), title, self.config.reward)

    def cost_summary(self, arch: list[int], points: list[dict]) -> dict:
        """The pick's and the base's MAdds and parameters, the space's range, the cost
        settings and the Pareto view (`rundirs.COST_METRICS` and context)."""
        pick = self.costs.of(arch)
        base = self.costs.of(self.base_arch) if self.base_arch else None
        return {
            **pick, "image_size": self.data.image_size,
            **({f"base_{k}": v for k, v in base.items()} if base else {}),
            "madds_vs_base": round(pick["madds"] / base["madds"], 4) if base else None,
            "scope_madds_vs_base": (round(pick["scope_madds"] / base["scope_madds"], 4)
                                    if base and base["scope_madds"] else None),
            "madds_range": self.costs.bounds(), "cost_target": self.cost_target,
            "pareto": points, "pareto_front": [p for p in points if p["front"]],
        }

    def summary(self, architecture: Architecture, val_accuracy: float,
                points: list[dict]) -> dict:
        """`summary.json`: the search's metrics (`rundirs.SEARCH_METRICS`) and context."""
        c, s, stop, space = self.config, self.state, self.stopper, self.space
        return {
            **self.cost_summary(list(architecture.choices), points),
            "strategy": c.strategy, "base": space.base, "scope": space.scope,
            "num_decisions": space.num_decisions, "num_subnets": space.num_subnets,
            "search_budget": c.budget, "search_steps": s.step, "warmup_steps": self.warm,
            "ranking_steps": c.budget - self.ranking_from,
            "ranking_subnets_scored": len(self.ranked),
            "ranking_steps_shared": (round(self.sharing.shared, 4)
                                     if self.sharing is not None else None),
            "ranking_best": [{"architecture": space.describe(a), "reward": r,
                              "objective": self.objective(a, r), **self.costs.of(a)}
                             for a, r in sorted(self.ranked.items(),
                                                key=lambda x: -self.objective(*x))[:10]],
            "stopped_early": self.stopped, "early_stop_step": stop.fired_at,
            "stop_reason": stop.reason or None,
            "architecture_at_stop": (space.describe(stop.arch_at_stop)
                                     if stop.arch_at_stop is not None else None),
            "search_cost_saved": round(1 - s.step / c.budget, 4),
            "early_stop_saving": (round(1 - stop.fired_at / c.budget, 4)
                                  if stop.fired_at is not None else None),
            "controller_updates": s.updates,
            "subnets_sampled": min(s.step, self.ranking_from) + s.updates,
            "images_seen": s.images, "search_seconds": round(s.wall, 2),
            "device": str(self.device), "threads": torch.get_num_threads(),
            "features": self.batches.info, "architecture": architecture.names,
            "supernet_val_accuracy": val_accuracy, "inert_kernel_decisions": self.inert,
            "seed": c.seed, "dataset": self.dataset.name,
            "dataset_fingerprint": self.dataset.fingerprint(), "config": c.to_dict(),
        }


def run_search(space: SearchSpace, dataset: Dataset, data: DataConfig, config: SearchConfig,
               out: str | Path, resume: bool = False,
               on_step: Callable[[int], None] | None = None,
               init: dict[str, torch.Tensor] | None = None) -> dict:
    """Runs the architecture search and writes its outputs to `out`.

    Outputs (`rundirs.SEARCH`): `architecture.json`, `search_history.jsonl` (one row per
    architecture update), `action_heatmap.png`, `reward_curve.png`, `pareto.png` (reward
    against MAdds of every scored subnet), `summary.json`,
    `supernet.safetensors` (searched weights, for fine-tuning with `--init supernet`), and
    `checkpoint.pt` while the search is unfinished.

    Args:
        space: the search space.
        dataset: the target dataset (train split trains, val split rewards).
        data: its configuration (image size).
        config: search hyper-parameters.
        out: output directory.
        resume: continue from `out/checkpoint.pt`; a finished search is returned as it is and
            an empty `out` starts a new one.
        on_step: called after every completed step (progress hooks, tests).
        init: the supernet's initial state dict; see `SearchRun`.

    Returns:
        The summary (also written to `summary.json`).

    Raises:
        ConfigError: `out` holds a search and `resume` is False, or the checkpoint was written
            with different settings.
    """
    out = Path(out)
    ckpt, summary = out / CHECKPOINT, out / rundirs.SEARCH.summary
    if resume and summary.exists() and not ckpt.exists():
        return json.loads(summary.read_text())
    if not resume and (ckpt.exists() or summary.exists()):
        raise ConfigError(f"{out} already holds a search; pass --resume to continue it or "
                          "choose another --out")
    if resume and not ckpt.exists():
        log.info("nothing to resume in %s: starting a new search", out)
        resume = False
    out.mkdir(parents=True, exist_ok=True)
    run = SearchRun(space, dataset, data, config, out, init)
    if resume:
        run.resume()
    # The history file always holds exactly the rows of the state it belongs with.
    atomic_write_text(out / rundirs.SEARCH.history,
                      "".join(json.dumps(r.to_json()) + "\n" for r in run.history))
    run.train(on_step)
    return run.finish()
