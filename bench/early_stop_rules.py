"""Does the controller settle within the budget, and would an early stop pick the full-budget
architecture? (docs/BENCHMARKS.md, "Controller convergence and the early stop")

Runs REINFORCE searches with the early stop in dry-run mode (the whole budget runs; the history
records every controller update), then replays each recorded history through a grid of stop
rules (`min_top_p` x `window`): where each rule would stop, and whether the greedy architecture
at that step is the one the whole budget ends with. Replaying needs no new search: a stop rule
only reads the history.

    python bench/early_stop_rules.py --task photos --seeds 0 1 \\
        --set controller_lr=1e-2 --out runs/bench-early-stop
    python bench/early_stop_rules.py --replay-only --out runs/bench-early-stop
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from archft.data import DataConfig, load_dataset
from archft.runconfig import RunConfig
from archft.search import run_search
from archft.search.earlystop import EarlyStopConfig, EarlyStopper
from archft.search.strategies import Update
from archft.space import SpaceConfig

RULES = list(itertools.product([0.0, 0.5, 0.6, 0.7], [10, 25, 50, 100, 150]))  # top p x window


def search(out: Path, task: str, seeds: list[int], sets: list[str]) -> None:
    """The benchmark's setting (30 shots, 128 px, Lite0 medium, the default's warm-up and BN
    recalibration), the stop in dry-run mode, `--set` search fields on top."""
    data = DataConfig(task, 128, train_per_class=30)
    dataset = load_dataset(data)
    space = SpaceConfig(scope="medium").build(len(dataset.classes))
    tag = "_".join(sets) or "default"
    for seed in seeds:
        pairs = [f"search.seed={seed}", "search.warmup=0.25", "search.bn_recalibration=4",
                 "search.early_stop.dry_run=true", "search.progress=false",
                 *(f"search.{p}" for p in sets)]
        config = RunConfig().with_overrides(pairs).search
        run_search(space, dataset, data, config, out / task / tag / f"seed{seed}", resume=True)


def replay(history: list[dict], budget: int, rule: EarlyStopConfig, start: int = 0
           ) -> tuple[int | None, bool]:
    """Where `rule` stops on a recorded history, and whether it picks the final architecture;
    `start`: the first step the stop judges (a ranking phase's)."""
    stopper = EarlyStopper(rule, budget=budget, start=start)
    rows = [Update(**row) for row in history]
    for r in rows:
        stopper.update(r.step, r.reward, r.probs, r.choice)
    return stopper.fired_at, stopper.arch_at_stop == rows[-1].choice


def _scored(history: list[dict], step: int) -> int:
    """Distinct subnets rewarded up to `step`: what the search had paid for by then (a ranking
    phase remembers each subnet's reward, so a repeat costs nothing)."""
    return len({tuple(arch) for row in history if row["step"] <= step
                for arch, _ in (row.get("samples") or [(row["arch"], row["reward"])])})


def report(out: Path) -> None:
    for path in sorted(out.rglob("summary.json")):
        summary = json.loads(path.read_text())
        if summary.get("strategy", "reinforce") != "reinforce":
            # random search and DARTS have no controller whose settling a stop rule could judge
            print(f"{path.parent.relative_to(out)}  skipped: {summary['strategy']} search")
            continue
        history = [json.loads(line) for line in
                   (path.parent / "search_history.jsonl").read_text().splitlines()]
        tops = [round(min(max(p) for p in row["probs"]), 2) for row in history[::100]]
        budget = summary["search_budget"]
        start = budget - summary.get("ranking_steps", 0)
        start = start if start < budget else 0
        cells = []
        for top_p, window in RULES:
            at, same = replay(history, budget, EarlyStopConfig(min_top_p=top_p, window=window),
                              start)
            cells.append(f"p{top_p}/w{window}: {at if at else '-'}{'=' if same else 'x'}")
        stop, final = summary["early_stop_step"], summary["architecture"]
        same = "same as" if summary["architecture_at_stop"] == final else "not"
        scored = (f"{_scored(history, stop)} of {_scored(history, budget)}" if stop
                  else str(_scored(history, budget)))
        print(f"{path.parent.relative_to(out)}  lowest top p every 100 updates {tops}; "
              f"configured stop at {stop} ({same} the full budget's {' '.join(final)}); "
              f"{summary['search_seconds']:.0f} s; subnets scored by the stop: {scored}")
        print("   " + "  ".join(cells))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="photos")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--set", nargs="*", default=[], help="search fields, e.g. controller_lr=1e-2")
    p.add_argument("--out", type=Path, default=Path("runs/bench-early-stop"))
    p.add_argument("--replay-only", action="store_true")
    args = p.parse_args()
    if not args.replay_only:
        search(args.out, args.task, args.seeds, args.set)
    report(args.out)


if __name__ == "__main__":
    main()
