"""The cost-aware search against accuracy-only and vanilla: accuracy, MAdds, params, latency.

For each task and seed, with the default search of `configs/default.yaml` (REINFORCE, a
fair-sampling warm-up for the first half of the budget, then a ranking phase on the fixed
supernet) and stage 2's defaults:

    acc          the default search, accuracy only (cost weight 0): today's `make run`
    cost         the same with `search.cost.weight` = --weight
    depth-cost   the same over the space with depth decisions (`space.depth` = --depth)
    random-cost  random search with the same cost
    vanilla      the unmodified base, same scope and budget

and, for each searched row, the model the pipeline would ship against vanilla
(`archft.export.choose_model`: the better on validation, a tie to the cheaper). Every model's
onnxruntime batch-1 latency is measured side by side in one process (`batch1_latency`).

The supernet trains only in the warm-up, whose steps no objective touches (no architecture
update runs before the ranking phase), so `cost` and `random-cost` resume the `acc` search's
checkpoint at the first ranking step with their own objective: exactly the numbers a run of
their own would draw from that step on, at half the cost (tests/test_search.py: a resumed
search is the uninterrupted one).

    python bench/cost.py --tasks textures --patches 300 100 200 --patch-side 0.015 0.03 \\
        --seeds 0 1 2 --weight 0.5 --out runs/bench-cost-textures
    python bench/cost.py --report runs/bench-cost-textures runs/bench-cost-photos ...

Rows go to `rows.jsonl` as they finish; an interrupted benchmark resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import (  # noqa: E402
    Bench,
    finetune_argument,
    finetune_config,
    load_task,
    task_arguments,
)

from archft.core import rundirs  # noqa: E402
from archft.export import batch1_latency, choose_model, export_model  # noqa: E402
from archft.finetune import run_finetune  # noqa: E402
from archft.search import SearchConfig, run_search  # noqa: E402
from archft.space import Architecture, SearchSpace  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUNS = ("acc", "cost", "depth-cost", "random-cost")
BUDGET = None


def default_search(seed: int, **changes) -> SearchConfig:
    """The search section of configs/default.yaml (what `make run` searches with)."""
    plain = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())["parameters"]["search"]
    plain = {**plain, "seed": seed, "progress": False, **changes}
    if BUDGET:  # --budget: a shorter search (a check of the benchmark itself)
        plain["budget"] = BUDGET
    return SearchConfig.from_dict(plain)


def _ranking_checkpoint(sdir: Path, config: SearchConfig, keep: Path):
    """An `on_step` that copies the search's checkpoint (and history) at the first ranking
    step into `keep`."""
    first = config.budget - int(config.ranking * config.budget)

    def on_step(step: int) -> None:
        if step == first and not keep.exists():
            keep.mkdir(parents=True)
            for name in (rundirs.SEARCH.checkpoint, rundirs.SEARCH.history):
                shutil.copy(sdir / name, keep / name)

    return on_step, first


def _resume_from(keep: Path, sdir: Path, config: SearchConfig) -> None:
    """Seeds `sdir` with the kept checkpoint, its configuration replaced by `config`'s (the
    objective and strategy are what differ; the warm-up they share is untouched by both)."""
    if sdir.exists():
        return
    sdir.mkdir(parents=True)
    shutil.copy(keep / rundirs.SEARCH.history, sdir / rundirs.SEARCH.history)
    ckpt = torch.load(keep / rundirs.SEARCH.checkpoint, weights_only=True)
    ckpt["config"] = config.to_dict()
    torch.save(ckpt, sdir / rundirs.SEARCH.checkpoint)


def run_task(bench: Bench, task: str, seeds: list[int], args: argparse.Namespace) -> None:
    data, dataset = load_task(args, task)
    n = len(dataset.classes)
    spaces = {"plain": SearchSpace.from_base(args.base, args.scope, num_classes=n),
              "depth": SearchSpace.from_base(args.base, args.scope, num_classes=n,
                                             depth=args.depth)}
    cost = {"weight": args.weight}
    for seed in seeds:
        plain = spaces["plain"]
        acc_cfg = default_search(seed)
        # A checkpoint at the first ranking step (checkpoint_every does not change a search).
        first = acc_cfg.budget - int(acc_cfg.ranking * acc_cfg.budget)
        acc_cfg = default_search(seed, checkpoint_every=first)
        keep = bench.run_dir(task, seed, "acc") / "ranking-start"
        on_step, _ = _ranking_checkpoint(bench.run_dir(task, seed, "acc") / "search", acc_cfg,
                                         keep)
        searches = {"acc": (plain, acc_cfg, None),
                    "cost": (plain, default_search(seed, cost=cost), keep),
                    "random-cost": (plain, default_search(seed, cost=cost, strategy="random",
                                                          controller_steps=1), keep),
                    "depth-cost": (spaces["depth"], default_search(seed, cost=cost), None)}
        for run, (space, config, start) in searches.items():
            sdir = bench.run_dir(task, seed, run) / "search"
            if bench.done(task, seed, run):
                continue
            if start is not None:
                _resume_from(start, sdir, config)
            s = run_search(space, dataset, data, config, sdir, resume=True,
                           on_step=on_step if run == "acc" else None)
            arch = [d.candidates.index(c) for d, c in zip(space.decisions, s["architecture"])]
            finetune(bench, task, seed, run, space, arch, dataset, data, args,
                     {"search_seconds": s["search_seconds"], "search_steps": s["search_steps"],
                      "early_stop_step": s["early_stop_step"], "cost_weight": config.cost.weight,
                      "ranking_subnets_scored": s["ranking_subnets_scored"]})
        finetune(bench, task, seed, "vanilla", plain, plain.base_architecture, dataset, data,
                 args, {}, vanilla=True)
        latency(bench, task, seed, dataset, data)


def finetune(bench, task, seed, run, space, arch, dataset, data, args, extra, vanilla=False):
    """Stage 2 of `arch` (or vanilla), with its cost and per-image results, as a row."""
    if bench.done(task, seed, run):
        return
    mdir = bench.run_dir(task, seed, run) / "model"
    m = run_finetune(Architecture.of(space, arch), dataset, data,
                     finetune_config(args, seed, vanilla), mdir)
    bench.add({"task": task, "seed": seed, "run": run, "architecture": m["architecture"],
               **{k: m[k] for k in ("val_accuracy", "test_accuracy", "madds", "params",
                                    "scope_madds", "finetune_seconds", "val_correct",
                                    "test_correct")}, **extra})


def latency(bench: Bench, task: str, seed: int, dataset, data) -> None:
    """Every model of one task and seed exported and timed at batch 1, side by side."""
    if bench.done(task, seed, "latency"):
        return
    with tempfile.TemporaryDirectory(prefix="archft-bench-") as tmp:
        paths = {run: export_model(bench.run_dir(task, seed, run) / "model", Path(tmp) / run,
                                   data.image_size, dataset.classes)
                 for run in (*RUNS, "vanilla")}
        ms = batch1_latency(paths, repeats=300)
    bench.add({"task": task, "seed": seed, "run": "latency", "batch1_ms": ms,
               "threads": torch.get_num_threads()})


def _mean(xs):
    return statistics.mean(xs) if xs else None


def _std(xs):
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def summarise(rows: list[dict]) -> dict:
    """Per task and run: accuracy, cost and latency against vanilla (paired by seed), the
    architectures, and the shipped model's figures."""
    out = {}
    for task in dict.fromkeys(r["task"] for r in rows):
        t = [r for r in rows if r["task"] == task]
        by = {(r["run"], r["seed"]): r for r in t}
        seeds = sorted({r["seed"] for r in t if r["run"] == "latency"})
        entry = {}
        for run in (*RUNS, "vanilla"):
            rs = [by[(run, s)] for s in seeds if (run, s) in by]
            if not rs:
                continue
            van = [by[("vanilla", r["seed"])] for r in rs]
            lat = [by[("latency", r["seed"])]["batch1_ms"] for r in rs]
            e = {"seeds": [r["seed"] for r in rs],
                 "test": [r["test_accuracy"] for r in rs],
                 "gain": [r["test_accuracy"] - v["test_accuracy"] for r, v in zip(rs, van)],
                 "madds": _mean([r["madds"] for r in rs]), "params": _mean([r["params"]
                                                                             for r in rs]),
                 "madds_x": _mean([r["madds"] / v["madds"] for r, v in zip(rs, van)]),
                 "scope_x": _mean([r["scope_madds"] / v["scope_madds"] for r, v in zip(rs, van)]),
                 "ms": _mean([x[run] for x in lat]),
                 "faster_every_seed": all(x[run] < x["vanilla"] for x in lat),
                 "architectures": [" ".join(r["architecture"]) for r in rs]}
            if run != "vanilla":
                shipped = [choose_model(r, v) for r, v in zip(rs, van)]
                ship = [r if s["chosen"] == "two-stage" else v
                        for r, v, s in zip(rs, van, shipped)]
                e["shipped"] = {
                    "chosen": [s["chosen"] for s in shipped],
                    "gain": [s_["test_accuracy"] - v["test_accuracy"] for s_, v in zip(ship, van)],
                    "madds_x": _mean([s_["madds"] / v["madds"] for s_, v in zip(ship, van)]),
                    "scope_x": _mean([s_["scope_madds"] / v["scope_madds"]
                                      for s_, v in zip(ship, van)]),
                    "ms": _mean([x["vanilla" if s["chosen"] == "vanilla" else run]
                                 for x, s in zip(lat, shipped)])}
            entry[run] = e
        out[task] = entry
    return out


def markdown(summary: dict) -> str:
    lines = ["| task | run | test % mean +- std | gain over vanilla (mean; per seed) | "
             "MAdds (x vanilla; scope x) | params | batch-1 ms | shipped: chosen, gain, "
             "MAdds x, scope x, ms | architectures |", "| --- " * 9 + "|"]
    for task, runs in summary.items():
        for run, e in runs.items():
            gains = "; ".join(f"{100 * g:+.2f}" for g in e["gain"])
            ship = "-"
            if "shipped" in e:
                s = e["shipped"]
                ship = (f"{'/'.join('2s' if c == 'two-stage' else 'v' for c in s['chosen'])}, "
                        f"{100 * _mean(s['gain']):+.2f}, {s['madds_x']:.3f}, {s['scope_x']:.3f}, "
                        f"{s['ms']:.3f}")
            lines.append(
                f"| {task} | {run} | {100 * _mean(e['test']):.2f} +- "
                f"{100 * _std(e['test']):.2f} | "
                f"{100 * _mean(e['gain']):+.2f} ({gains}) | {e['madds'] / 1e6:.1f} M "
                f"({e['madds_x']:.3f}; {e['scope_x']:.3f}) | {e['params'] / 1e6:.2f} M | "
                f"{e['ms']:.3f}{'' if run == 'vanilla' or not e['faster_every_seed'] else ' (<v)'}"
                f" | {ship} | {'; '.join(e['architectures'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    task_arguments(p)
    finetune_argument(p)
    p.add_argument("--weight", type=float, default=0.5, help="search.cost.weight (lambda)")
    p.add_argument("--depth", type=int, nargs="+", default=[-1, 0, 1])
    p.add_argument("--out", default="runs/bench-cost")
    p.add_argument("--report", nargs="*", metavar="DIR",
                   help="only summarise these benchmark directories together")
    p.add_argument("--budget", type=int, help="search budget (default: configs/default.yaml's)")
    args = p.parse_args()
    global BUDGET
    BUDGET = args.budget
    if args.report:
        rows = [json.loads(line) for d in args.report
                for line in (Path(d) / "rows.jsonl").read_text().splitlines()]
        print(markdown(summarise(rows)))
        return
    bench = Bench(Path(args.out), args)
    for task in args.tasks:
        run_task(bench, task, args.seeds, args)
    summary = summarise(bench.rows)
    bench.report("cost", summary, markdown(summary))


if __name__ == "__main__":
    main()
