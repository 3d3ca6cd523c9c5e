"""What is the best any search of this space could deliver? Fixed architectures, fine-tuned.

A search can at most pick the architecture that fine-tunes best. This benchmark fine-tunes a
fixed set of architectures of the space with the stage-2 defaults over tasks and seeds, next to
the vanilla baseline (the base's own architecture), and reports per task:

- every architecture's test accuracy (mean, std) and its gain over vanilla, paired by seed;
- the *test oracle*: the architecture with the best mean test accuracy on the seeds that
  fine-tuned every architecture, i.e. an upper bound on what choosing one architecture per task
  can gain (biased upwards: it is chosen on test);
- the *validation oracle*: per seed, the architecture with the best fine-tuned validation
  accuracy, and its test accuracy. This is what a search that fine-tuned every candidate fully
  and kept the best on validation would get: a realistic ceiling for selection by validation.

The set: the base, four structured mutations (every block's kernel at the largest candidate
with the base's expansion, the function-preserving growth; every kernel at the smallest; the
base's kernels at the smallest expansion; both at their smallest) and uniformly drawn ones.

    python bench/oracle.py --tasks digits photos textures --train-per-class 30 --seeds 0 1 2 \\
        --random 4 --out runs/bench-oracle

Rows are appended to `rows.jsonl` as they finish; a rerun skips them (resumable). `--only base
kmin --seeds 3 4 5` adds seeds for chosen architectures; the validation oracle then keeps to the
seeds that fine-tuned every architecture.

`--depth d+1 d+1z d-1` adds rows whose depth differs from the base's, outside the space (which
searches kernel and expansion only): `d+N` appends N copies of the last block of the scope's
deepest stage that has more than one block (seed 003 eq. 1: a new layer copies the last one),
`d+Nz` the same with each copy's last BatchNorm zeroed, so the net starts as exactly the base
(a residual block that adds zero), and `d-N` drops that stage's last N blocks (residual, so the
rest still stacks). These are a probe of what a depth search could gain: their model
directories are not loadable with `archft`, whose architecture files know no depth.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import re
import statistics
from pathlib import Path
from typing import Callable, Iterator

import torch
from quality import Bench, _indices, _stats, finetune_argument, load_task, task_arguments
from torch import nn

import archft.finetune.finetune as stage2
from archft.core.rng import generator
from archft.models import get_submodule_parent
from archft.space import SearchSpace, parse_candidate, scope_stages


def _pick(space: SearchSpace, kernel, expansion) -> list[int]:
    """Per decision, the candidate with kernel/expansion chosen by the functions given (each maps
    (the decision's available values, the base's value) to one value)."""
    arch = []
    for d in space.decisions:
        cands = [parse_candidate(c) for c in d.candidates]
        k0, e0 = cands[d.base]
        k = kernel(sorted({k for k, _ in cands}), k0)
        e = expansion(sorted({e for _, e in cands}), e0)
        arch.append(cands.index((k, e)))
    return arch


def architectures(space: SearchSpace, n_random: int, seed: int = 0) -> dict[str, list[int]]:
    """Name -> architecture: the base, the structured mutations, then `n_random` uniform draws."""
    own = lambda values, v0: v0  # noqa: E731
    low = lambda values, v0: values[0]  # noqa: E731
    high = lambda values, v0: values[-1]  # noqa: E731
    archs = {"base": space.base_architecture,
             "kmax": _pick(space, high, own), "kmin": _pick(space, low, own),
             "emin": _pick(space, own, low), "kmin_emin": _pick(space, low, low)}
    g = generator("cpu", seed, "oracle")
    while len(archs) < 5 + n_random:
        a = [int(torch.randint(len(d.candidates), (1,), generator=g)) for d in space.decisions]
        if a not in archs.values():
            archs[f"random{len(archs) - 4}"] = a
    return archs


def named(space: SearchSpace, specs: list[str]) -> dict[str, list[int]]:
    """`--arch NAME=c1,c2,...` -> name -> architecture (candidate indices)."""
    archs = {}
    for spec in specs:
        name, eq, text = spec.partition("=")
        choices = text.split(",")
        if not eq or not name or len(choices) != len(space.decisions):
            raise SystemExit(f"--arch: expected NAME=<{len(space.decisions)} comma-separated "
                             f"candidates>, got {spec!r}")
        if bad := [c for d, c in zip(space.decisions, choices) if c not in d.candidates]:
            raise SystemExit(f"--arch {name}: {bad[0]!r} is not a candidate of this space")
        archs[name] = _indices(space, choices)
    return archs


def depth_change(space: SearchSpace, name: str) -> Callable[[nn.Module], nn.Module]:
    """The in-place change of a built subnet that `--depth NAME` names (module docstring)."""
    m = re.fullmatch(r"d([+-])([1-9])(z?)", name)
    if m is None:
        raise SystemExit(f"--depth: expected d+N, d+Nz or d-N, got {name!r}")
    grow, n, zero = m.group(1) == "+", int(m.group(2)), m.group(3) == "z"
    stage = next((st for st in reversed(scope_stages(space.spec, space.scope)) if len(st) > 1),
                 None)
    if space.spec.family != "mbconv" or stage is None:
        raise SystemExit(f"--depth: needs an MBConv base with a stage of two or more blocks in "
                         f"scope; {space.base} {space.scope} has none")
    if zero and not grow:
        raise SystemExit(f"--depth {name}: only added blocks start at zero (d+Nz)")
    if not grow and n >= len(stage):
        raise SystemExit(f"--depth {name}: {stage[0]}..{stage[-1]} has {len(stage)} blocks, and "
                         f"its first (the one that changes the shape) stays")

    def change(net: nn.Module) -> nn.Module:
        if grow:
            last = net.get_submodule(stage[-1])
            copies = [copy.deepcopy(last) for _ in range(n)]
            for c in copies if zero else ():
                nn.init.zeros_(c.project.bn.weight)
                nn.init.zeros_(c.project.bn.bias)
            parent, attr = get_submodule_parent(net, stage[-1])
            setattr(parent, attr, nn.Sequential(last, *copies))
        else:
            for path in stage[-n:]:
                parent, attr = get_submodule_parent(net, path)
                setattr(parent, attr, nn.Identity())
        return net
    return change


@contextlib.contextmanager
def built_with(change: Callable[[nn.Module], nn.Module] | None) -> Iterator[None]:
    """Stage 2 builds its subnets through `change` while the block runs."""
    if change is None:
        yield
        return
    original = stage2.build_subnet
    stage2.build_subnet = lambda space, arch: change(original(space, arch))
    try:
        yield
    finally:
        stage2.build_subnet = original


def complete_seeds(rows: list[dict]) -> list[int]:
    """The seeds of one task's rows that fine-tuned every architecture the rows name (a seed
    run with `--only` is not one)."""
    names = {r["run"] for r in rows}
    return sorted(s for s in {r["seed"] for r in rows}
                  if {r["run"] for r in rows if r["seed"] == s} == names)


def summarise(rows: list[dict], task: str) -> dict:
    """Per architecture: test accuracy stats and the gain over vanilla paired by seed; the
    test and validation oracles."""
    t = [r for r in rows if r["task"] == task]
    vanilla = {r["seed"]: r["test_accuracy"] for r in t if r["run"] == "base"}
    per = {}
    for name in dict.fromkeys(r["run"] for r in t):
        rs = [r for r in t if r["run"] == name]
        per[name] = {"architecture": rs[0]["architecture"],
                     "test_accuracy": _stats([r["test_accuracy"] for r in rs]),
                     "val_accuracy": _stats([r["val_accuracy"] for r in rs]),
                     "gain_over_vanilla": _stats([r["test_accuracy"] - vanilla[r["seed"]]
                                                  for r in rs if r["seed"] in vanilla])}
    seeds = complete_seeds(t)
    on_seeds = {name: statistics.mean(r["test_accuracy"] for r in t
                                      if r["run"] == name and r["seed"] in seeds)
                for name in per} if seeds else {}
    best = max(on_seeds, key=on_seeds.get) if on_seeds else None
    picks = []
    for s in seeds:
        rs = [r for r in t if r["seed"] == s]
        top = max(rs, key=lambda r: (r["val_accuracy"], r["run"] == "base"))  # ties: the base
        picks.append({"seed": s, "run": top["run"], "test_accuracy": top["test_accuracy"],
                      "gain": top["test_accuracy"] - vanilla[s] if s in vanilla else None})
    return {"architectures": per, "test_oracle": best,
            "val_oracle": {"picks": picks,
                           "gain": _stats([p["gain"] for p in picks])}}


def _gain(g: dict | None) -> str:
    """A paired gain's cell: mean +- std in points, or a dash where no base run pairs it."""
    return f"{100 * g['mean']:+.2f} +- {100 * g['std']:.2f}" if g else "- (no base run)"


def markdown(summaries: dict) -> str:
    lines = ["| task | architecture | test % mean +- std (seeds) | gain over vanilla (paired) | "
             "val % mean |", "| --- | --- | --- | --- | --- |"]
    for task, s in summaries.items():
        for name, e in s["architectures"].items():
            a, g, v = e["test_accuracy"], e["gain_over_vanilla"], e["val_accuracy"]
            star = " (test oracle)" if name == s["test_oracle"] else ""
            lines.append(f"| {task} | {name}{star}: {' '.join(e['architecture'])} | "
                         f"{100 * a['mean']:.2f} +- {100 * a['std']:.2f} ({a['n']}) | {_gain(g)} | "
                         f"{100 * v['mean']:.2f} |")
        vo = s["val_oracle"]
        if not vo["picks"]:  # no seed fine-tuned every architecture
            continue
        picks = ", ".join(f"{p['run']} {100 * p['test_accuracy']:.2f}" for p in vo["picks"])
        lines.append(f"| {task} | validation oracle ({picks}) | "
                     f"{100 * statistics.mean(p['test_accuracy'] for p in vo['picks']):.2f} | "
                     f"{_gain(vo['gain'])} | - |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    task_arguments(p)
    finetune_argument(p)
    p.add_argument("--random", type=int, default=4, help="uniformly drawn architectures")
    p.add_argument("--only", nargs="+", metavar="NAME",
                   help="fine-tune only these architectures (base, kmax, kmin, emin, kmin_emin, "
                        "randomN)")
    p.add_argument("--arch", nargs="+", default=[], metavar="NAME=CHOICES",
                   help="more architectures by name, e.g. pick0=k5_e6,k3_e6,k7_e3,k3_e3,k3_e6 "
                        "(one candidate per decision); --only selects among them too")
    p.add_argument("--depth", nargs="+", default=[], metavar="NAME",
                   help="rows with the base's depth changed: d+N, d+Nz, d-N (module docstring); "
                        "--only selects among them too")
    p.add_argument("--out", default="runs/bench-oracle")
    args = p.parse_args()
    bench = Bench(Path(args.out), args)
    summaries = {}
    for task in args.tasks:
        data, dataset = load_task(args, task)
        space = SearchSpace.from_base(args.base, args.scope, num_classes=len(dataset.classes))
        if space.inert_kernels(args.image_size):
            raise SystemExit(f"{task}: inert decisions at {args.image_size} px")
        archs = {**architectures(space, args.random), **named(space, args.arch)}
        changes = {name: depth_change(space, name) for name in args.depth}
        archs |= {name: space.base_architecture for name in changes}
        if args.only:
            if unknown := sorted(set(args.only) - set(archs)):
                raise SystemExit(f"--only: unknown architecture {unknown[0]!r}; choose from "
                                 f"{', '.join(archs)}")
            archs = {n: a for n, a in archs.items() if n in args.only}
        for seed in args.seeds:
            for name, arch in archs.items():
                with built_with(changes.get(name)):
                    bench.finetune(task, seed, name, space, arch, dataset, data, {},
                                   vanilla=name == "base")
        summaries[task] = summarise(bench.rows, task)
    bench.report("oracle", summaries, markdown(summaries))


if __name__ == "__main__":
    main()
