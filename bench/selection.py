"""Can validation tell the architectures apart? The signals a search selects by, against test.

A search picks the architecture with the best validation signal. This benchmark asks, per task
and seed, how well two such signals rank the architectures of an oracle run (`bench/oracle.py`:
fixed architectures fully fine-tuned, with their test accuracy) by that test accuracy:

- the *fine-tuned validation accuracy* of each architecture: what a search that fine-tuned
  every candidate fully and kept the best on validation would go by (the validation oracle);
- the *supernet rewards* (every reward of `archft.engine.SCORES`, plain and after BatchNorm
  recalibration) of the same architectures on the supernet a search trained
  (`bench/quality.py`'s REINFORCE directory of the same task and seed), next to the
  architectures the searches picked (their fine-tuned test accuracy from the same rows).

First, whether there is anything to tell apart: a two-way analysis of variance of the oracle's
test accuracy (architecture + seed, additive; the seeds that fine-tuned every architecture)
gives the architecture's F and p. Where p is large, the architectures' test accuracies differ
by no more than a change of seed moves them: there is no evidence of a difference to rank.
Then, per signal: Spearman's rank correlation with test accuracy and the rank, by the signal,
of the architecture that was best on test (ties count in its favour). Both signals judge the
same architectures. Only the scoring runs here; nothing is trained.

    python bench/selection.py --oracle runs/bench-oracle-large30 --searches runs/bench-large30-d1 \\
        --tasks textures digits --scope large --train-per-class 30 --out runs/bench-selection
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
from oracle import complete_seeds
from quality import Bench, _indices, load_task, task_arguments
from ranking import supernet_rewards
from scipy.stats import f as f_distribution
from scipy.stats import spearmanr

from archft.space import SearchSpace

PICKS = ("reinforce", "random")  # the quality benchmark's runs whose choice is scored too


def _rank_of_best(signal: list[float], test: list[float]) -> int:
    """1-based rank, by `signal` (highest first), of the architecture best on test."""
    best = max(range(len(test)), key=test.__getitem__)
    return 1 + sum(s > signal[best] for s in signal)


def _judge(signal: list[float], test: list[float]) -> dict:
    return {"spearman": round(float(spearmanr(signal, test).statistic), 3),
            "rank_of_test_best": _rank_of_best(signal, test), "of": len(test)}


def architecture_effect(oracle: list[dict], task: str) -> dict | None:
    """Two-way additive ANOVA of test accuracy (points) on architecture and seed, over the seeds
    that fine-tuned every architecture: the architecture's F, p and the residual std."""
    rows = [r for r in oracle if r["task"] == task]
    names = list(dict.fromkeys(r["run"] for r in rows))
    seeds = complete_seeds(rows)
    if len(names) < 2 or len(seeds) < 2:
        return None
    y = np.zeros((len(names), len(seeds)))
    for r in rows:
        if r["seed"] in seeds:
            y[names.index(r["run"]), seeds.index(r["seed"])] = 100 * r["test_accuracy"]
    resid = y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + y.mean()
    df_arch, df_error = len(names) - 1, (len(names) - 1) * (len(seeds) - 1)
    ms_arch = len(seeds) * ((y.mean(1) - y.mean()) ** 2).sum() / df_arch
    ms_error = (resid ** 2).sum() / df_error
    f = ms_arch / ms_error
    return {"architectures": len(names), "seeds": seeds, "F": round(float(f), 2),
            "p": round(float(f_distribution.sf(f, df_arch, df_error)), 4),
            "residual_std_points": round(float(np.sqrt(ms_error)), 2)}


def task_rows(oracle: list[dict], quality: list[dict], task: str, seed: int) -> list[dict]:
    """The oracle's architectures of one task and seed, then the searches' picks."""
    rows = [r for r in oracle if (r["task"], r["seed"]) == (task, seed)]
    return rows + [dict(r, run=f"picked-{r['run']}") for r in quality
                   if (r["task"], r["seed"]) == (task, seed) and r["run"] in PICKS]


def _read(directory: str | None) -> list[dict]:
    if not directory:
        return []
    path = Path(directory) / "rows.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path}: no such file (expected a benchmark directory)")
    return [json.loads(x) for x in path.read_text().splitlines()]


def _line(task: str, signal: str, per: dict[int, dict]) -> str:
    rho = " / ".join(f"{j['spearman']:+.2f}" for j in per.values())
    mean = statistics.mean(j["spearman"] for j in per.values())
    ranks = " / ".join(f"{j['rank_of_test_best']} of {j['of']}" for j in per.values())
    return f"| {task} | {signal} | {rho} ({mean:+.2f}) | {ranks} |"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    task_arguments(p)
    p.add_argument("--oracle", required=True, help="a bench/oracle.py directory")
    p.add_argument("--searches", help="a bench/quality.py directory of the same setting")
    p.add_argument("--out", default="runs/bench-selection")
    args = p.parse_args()
    oracle, quality = _read(args.oracle), _read(args.searches)
    bench = Bench(Path(args.out), args)
    effects = ["| task | architectures x seeds | architecture F | p | residual std (points) |",
               "| --- | --- | --- | --- | --- |"]
    summary, lines = {}, ["| task | signal | Spearman with test, per seed (mean) | rank of the "
                          "test-best architecture, per seed |", "| --- | --- | --- | --- |"]
    for task in args.tasks:
        data, dataset = load_task(args, task)
        space = SearchSpace.from_base(args.base, args.scope, num_classes=len(dataset.classes))
        judged: dict[str, dict[int, dict]] = {}
        scored = []
        complete = complete_seeds([r for r in oracle if r["task"] == task])
        for seed in (s for s in args.seeds if s in complete):
            rows = task_rows(oracle, quality, task, seed)
            judged.setdefault("fine-tuned val accuracy", {})[seed] = _judge(
                [r["val_accuracy"] for r in rows], [r["test_accuracy"] for r in rows])
            search = Path(args.searches or "") / task / f"seed{seed}" / "reinforce" / "search"
            if not args.searches or not (search / "supernet.safetensors").exists():
                continue
            archs = [_indices(space, r["architecture"]) for r in rows]
            rewards = supernet_rewards(space, dataset, data, search, archs, seed)
            scored += [{"seed": seed, "run": r["run"], "architecture": r["architecture"],
                        "test_accuracy": r["test_accuracy"], "rewards": reward}
                       for r, reward in zip(rows, rewards)]
            for key in rewards[0]:
                judged.setdefault(f"supernet {key}", {})[seed] = _judge(
                    [rw[key] for rw in rewards], [r["test_accuracy"] for r in rows])
        lines += [_line(task, signal, per) for signal, per in judged.items()]
        effect = architecture_effect(oracle, task)
        if effect:
            effects.append(f"| {task} | {effect['architectures']} x {len(effect['seeds'])} | "
                           f"{effect['F']:.2f} | {effect['p']:.3f} | "
                           f"{effect['residual_std_points']:.2f} |")
        summary[task] = {"architecture_effect": effect, "signals": judged, "scored": scored}
    bench.report("selection", summary, "\n".join(effects) + "\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
