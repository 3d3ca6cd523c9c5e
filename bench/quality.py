"""Two-stage vs vanilla last-k fine-tuning, random search and DARTS, over tasks and seeds.

For each task and seed: search with each strategy, fine-tune what it found with the stage-2
defaults, and fine-tune the unmodified base with the same scope and budget (vanilla). REINFORCE
runs its whole budget with the early stop in dry-run mode: the architecture at the step where
it would have stopped is the two-stage result (a real early-stopped run draws exactly the same
numbers up to that step), and the architecture after the whole budget says whether stopping
early changed the answer. Random search trains the same supernet steps (its per-step rewards
are only logged, so it takes one per step). Runs sequentially: two torch processes on two cores
slow each other down.

With `--finetune init=supernet` stage 2 starts from the searched (shared) weights instead of
the remapped pretrained ones, and one more row, `base-supernet`, fine-tunes the base's own
architecture from the same supernet (REINFORCE's): it gets the same extra training on the target
data (the supernet's steps, and its classifier head) without a change of architecture, so the
pick's gain over it is the architecture's, and its gain over vanilla is the warm start's.
(REINFORCE's early stop is in dry-run mode, but the supernet no longer trains once the ranking
phase starts, so with a ranking phase the weights at the stop are the saved ones.)

Every finished row is appended to `rows.jsonl` at once and skipped when the command is run
again, so an interrupted benchmark resumes where it stopped.

    python bench/quality.py --tasks digits photos textures --image-size 128 --scope medium \\
        --seeds 0 1 2 --out runs/bench-quality
    python bench/quality.py ... --strategies reinforce --set reward=accuracy warmup=0  # ablation
    python bench/quality.py --tasks photos --patches 300 100 200 --patch-side 0.05 0.10 ...
        # a patch task with more (and smaller) patches: more data, larger val/test splits
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import statistics
from pathlib import Path

import torch

from archft.core.errors import ConfigError
from archft.data import DataConfig, Dataset, load_dataset
from archft.finetune import FinetuneConfig, run_finetune
from archft.runconfig import RunConfig
from archft.search import SearchConfig, run_search
from archft.space import Architecture, SearchSpace


def _stats(xs: list[float]) -> dict | None:
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"mean": statistics.mean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0,
            "min": min(xs), "max": max(xs), "n": len(xs)}


def search_config(strategy: str, seed: int, budget: int, overrides: list[str]) -> SearchConfig:
    """The benchmark's search config: the defaults, the strategy, seed and budget, then
    `--set` pairs (search fields, dotted for nested ones); REINFORCE's early stop in dry-run
    mode."""
    base = SearchConfig(strategy=strategy, budget=budget, seed=seed, progress=False)
    if strategy == "random":  # its per-step rewards are only logged
        base = dataclasses.replace(base, controller_steps=1)
    pairs = [f"search.{p}" for p in overrides]
    if strategy == "reinforce":  # one run gives the early-stopped and the full-budget choice
        pairs.append("search.early_stop.dry_run=true")
    return RunConfig(search=base).with_overrides(pairs).search


def finetune_config(args: argparse.Namespace, seed: int, vanilla: bool) -> FinetuneConfig:
    """The benchmark's stage-2 config: the defaults, `--steps` and the seed, then `--finetune`
    pairs (fine-tuning fields, e.g. lr=0.02, or lr=[0.02,0.05,0.1] to choose each model's rate
    on validation), the same for every architecture and vanilla."""
    base = FinetuneConfig(steps=args.steps, seed=seed, progress=False, vanilla=vanilla)
    pairs = [f"finetune.{p}" for p in args.finetune]
    try:
        return RunConfig(finetune=base).with_overrides(pairs, "--finetune").finetune
    except ConfigError as e:
        raise SystemExit(f"error: {e}") from None


def _indices(space: SearchSpace, names: list[str]) -> list[int]:
    return [d.candidates.index(n) for d, n in zip(space.decisions, names)]


class Bench:
    """Runs and records the rows of one benchmark directory."""

    def __init__(self, out: Path, args: argparse.Namespace):
        self.out, self.args = out, args
        self.path = out / "rows.jsonl"
        out.mkdir(parents=True, exist_ok=True)
        self.rows = ([json.loads(line) for line in self.path.read_text().splitlines()]
                     if self.path.exists() else [])

    def done(self, task: str, seed: int, run: str) -> dict | None:
        return next((r for r in self.rows if (r["task"], r["seed"], r["run"]) == (task, seed, run)),
                    None)

    def add(self, row: dict) -> None:
        self.rows.append(row)
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps({k: v for k, v in row.items() if k not in ("curve", "test_correct")}),
              flush=True)

    def report(self, name: str, summary: dict, table: str) -> None:
        """Writes `name`.json (the summary with the command's arguments, date and machine)
        and `name`.md (the table) into the benchmark directory, and prints the table."""
        result = {"config": vars(self.args), "date": datetime.date.today().isoformat(),
                  "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
                  "torch": torch.__version__, "summary": summary}
        (self.out / f"{name}.json").write_text(json.dumps(result, indent=2))
        (self.out / f"{name}.md").write_text(table)
        print(table)

    def run_dir(self, task: str, seed: int, run: str) -> Path:
        """Where one run of a task and seed keeps its search (`search/`) and model (`model/`)."""
        return self.out / task / f"seed{seed}" / run

    def finetune(self, task, seed, run, space, arch, dataset, data, extra: dict,
                 vanilla: bool = False, search_dir: Path | None = None) -> None:
        """Fine-tunes `arch` (stage 2 from the search in `search_dir` with `--finetune
        init=supernet`) and records the row."""
        if self.done(task, seed, run):
            return
        m = run_finetune(Architecture.of(space, arch), dataset, data,
                         finetune_config(self.args, seed, vanilla),
                         self.run_dir(task, seed, run) / "model", search_dir)
        self.add({"task": task, "seed": seed, "run": run, "architecture": m["architecture"],
                  "test_accuracy": m["test_accuracy"], "val_accuracy": m["val_accuracy"],
                  "finetune_seconds": m["finetune_seconds"], "lr": m["lr"],
                  "lr_sweep": m["lr_sweep"], "init": m["init"],
                  "test_correct": m.get("test_correct"), **extra})


def load_task(args: argparse.Namespace, task: str) -> tuple[DataConfig, Dataset]:
    """The task's data config and dataset (`--patches` and `--patch-side` size a patch task:
    `DataConfig.patches`, `patch_side`)."""
    try:
        data = DataConfig(task, args.image_size, train_per_class=args.train_per_class,
                          patches=tuple(args.patches) if args.patches else None,
                          patch_side=tuple(args.patch_side) if args.patch_side else None)
    except ConfigError as e:
        raise SystemExit(f"error: {e}") from None
    return data, load_dataset(data)


def run_task(bench: Bench, task: str, seeds: list[int], overrides: list[str]) -> None:
    args = bench.args
    data, dataset = load_task(args, task)
    space = SearchSpace.from_base(args.base, args.scope, num_classes=len(dataset.classes))
    inert = space.inert_kernels(args.image_size)
    if inert:
        raise SystemExit(f"{task}: {len(inert)} inert decisions at {args.image_size} px; the "
                         "benchmark needs live ones")
    for seed in seeds:
        for strategy in args.strategies:
            sdir = bench.run_dir(task, seed, strategy) / "search"
            config = search_config(strategy, seed, args.budget, overrides)
            s = run_search(space, dataset, data, config, sdir, resume=True)
            final = _indices(space, s["architecture"])
            info = {"search_steps": s["search_steps"], "search_seconds": s["search_seconds"],
                    "early_stop_step": s["early_stop_step"],
                    "early_stop_saving": s["early_stop_saving"],
                    "full_budget_architecture": s["architecture"],
                    "config": {k: v for k, v in config.to_dict().items() if k != "progress"}}
            if strategy == "reinforce" and s["architecture_at_stop"] is not None:
                stopped = _indices(space, s["architecture_at_stop"])
                info["same_as_full_budget"] = stopped == final
                bench.finetune(task, seed, "reinforce", space, stopped, dataset, data, info,
                               search_dir=sdir)
                if stopped != final:
                    bench.finetune(task, seed, "reinforce-full", space, final, dataset, data,
                                   info, search_dir=sdir)
            else:
                if strategy == "reinforce":
                    info["same_as_full_budget"] = None  # never settled: the full budget ran
                bench.finetune(task, seed, strategy, space, final, dataset, data, info,
                               search_dir=sdir)
        bench.finetune(task, seed, "vanilla", space, space.base_architecture, dataset, data,
                       {}, vanilla=True)
        if finetune_config(args, seed, False).init == "supernet" and "reinforce" in args.strategies:
            bench.finetune(task, seed, "base-supernet", space, space.base_architecture, dataset,
                           data, {}, search_dir=bench.run_dir(task, seed, "reinforce") / "search")


def summarise(rows: list[dict], tasks: list[str]) -> dict:
    """Per task and run: test accuracy stats, paired gain over vanilla, early-stop stats."""
    out = {}
    for task in tasks:
        t = [r for r in rows if r["task"] == task]
        vanilla = {r["seed"]: r["test_accuracy"] for r in t if r["run"] == "vanilla"}
        entry = {}
        for run in dict.fromkeys(r["run"] for r in t):
            rs = [r for r in t if r["run"] == run]
            e = {"test_accuracy": _stats([r["test_accuracy"] for r in rs]),
                 "gain_over_vanilla": _stats([r["test_accuracy"] - vanilla[r["seed"]]
                                              for r in rs if r["seed"] in vanilla]),
                 "architectures": [r["architecture"] for r in rs]}
            if run == "reinforce":
                e["stop_steps"] = [r["early_stop_step"] for r in rs]
                e["early_stop_saving"] = _stats([r["early_stop_saving"] for r in rs])
                e["same_as_full_budget"] = [r["same_as_full_budget"] for r in rs]
            entry[run] = e
        out[task] = entry
    return out


def markdown(summary: dict) -> str:
    """The summary as a table: task, run, test accuracy, gain, architectures, early stop."""
    lines = ["| task | run | test accuracy % mean +- std (min..max) | gain over vanilla "
             "(paired) | early stop: step, saving, same as full | chosen |",
             "| --- | --- | --- | --- | --- | --- |"]
    for task, runs in summary.items():
        for run, e in runs.items():
            a, g = e["test_accuracy"], e["gain_over_vanilla"]
            acc = (f"{100 * a['mean']:.2f} +- {100 * a['std']:.2f} "
                   f"({100 * a['min']:.2f}..{100 * a['max']:.2f})")
            gain = f"{100 * g['mean']:+.2f} +- {100 * g['std']:.2f}" if run != "vanilla" else "-"
            stop = "-"
            if run == "reinforce":
                saving = e["early_stop_saving"]
                stop = (f"{e['stop_steps']}, {100 * saving['mean']:.0f}%, "
                        f"{sum(bool(x) for x in e['same_as_full_budget'])} of "
                        f"{len(e['same_as_full_budget'])}" if saving else "never stopped")
            chosen = "; ".join(" ".join(x) for x in e["architectures"])
            lines.append(f"| {task} | {run} | {acc} | {gain} | {stop} | {chosen} |")
    return "\n".join(lines) + "\n"


def task_arguments(p: argparse.ArgumentParser) -> None:
    """The options that fix the benchmark's tasks, space, seeds and fine-tuning steps."""
    p.add_argument("--tasks", nargs="+", default=["digits", "photos", "textures"])
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--base", default="efficientnet_lite0")
    p.add_argument("--scope", default="medium")
    p.add_argument("--train-per-class", type=int, default=None,
                   help="few-shot: training images kept per class (default: all)")
    p.add_argument("--patches", nargs=3, type=int, metavar=("TRAIN", "VAL", "TEST"),
                   help="patches per class and split of a patch task (default: the task's own, "
                        "120 30 60): larger validation and test splits measure smaller effects")
    p.add_argument("--patch-side", nargs=2, type=float, metavar=("MIN", "MAX"),
                   help="patch side of a patch task as fractions of its source's shorter side "
                        "(default: the task's own; smaller patches make a harder task)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=FinetuneConfig().steps)


def finetune_argument(p: argparse.ArgumentParser) -> None:
    """`--finetune`, for the benchmarks that fine-tune (`Bench.finetune`)."""
    p.add_argument("--finetune", nargs="*", default=[], metavar="KEY=VALUE",
                   help="stage-2 overrides for every fine-tuning (vanilla too), e.g. lr=0.02 or "
                        "lr=[0.02,0.05,0.1] (each model's rate chosen on validation); "
                        "use a separate --out per setting: rows are keyed by task, seed, run")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    task_arguments(p)
    finetune_argument(p)
    p.add_argument("--strategies", nargs="*", default=["reinforce", "random", "darts"],
                   help="searches to run (none: only the vanilla baseline)")
    p.add_argument("--budget", type=int, default=SearchConfig().budget)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="search-config overrides, e.g. reward=accuracy early_stop.tau=0.8")
    p.add_argument("--out", default="runs/bench-quality")
    args = p.parse_args()
    bench = Bench(Path(args.out), args)
    overrides = args.set
    for task in args.tasks:
        run_task(bench, task, args.seeds, overrides)
    summary = summarise(bench.rows, args.tasks)
    bench.report("quality", summary, markdown(summary))


if __name__ == "__main__":
    main()
