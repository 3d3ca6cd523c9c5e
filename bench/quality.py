"""Two-stage architectural fine-tuning vs vanilla last-k fine-tuning (and random, DARTS).

For each seed: search with each strategy, fine-tune the result, fine-tune the unmodified base
with the same scope and budget, then report mean and spread of the test accuracy, the steps to
reach the vanilla run's final accuracy, and the early-stopping saving. Runs sequentially (two
torch processes on two cores slow each other down ~10x).

    python bench/quality.py --dataset digits --base efficientnet_lite0 --scope small \
        --seeds 0 1 2 --out runs/bench-quality
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from archft.architecture import Architecture
from archft.compare import steps_to_reach
from archft.data import DataConfig, load_dataset
from archft.finetune import FinetuneConfig, run_finetune
from archft.search import SearchConfig, run_search
from archft.space import SearchSpace


def _stats(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"mean": statistics.mean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0,
            "min": min(xs), "max": max(xs), "n": len(xs)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="digits")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--base", default="efficientnet_lite0")
    p.add_argument("--weights", default="imagenet")
    p.add_argument("--scope", default="small")
    p.add_argument("--strategies", nargs="+", default=["reinforce", "random", "darts"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--budget", type=int, default=200)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--out", default="runs/bench-quality")
    args = p.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    data = DataConfig(args.dataset, args.image_size)
    dataset = load_dataset(data)
    space = SearchSpace.from_base(args.base, args.scope, weights=args.weights,
                                  num_classes=len(dataset.classes))
    out = Path(args.out)
    rows = []
    for seed in args.seeds:
        ft = FinetuneConfig(steps=args.steps, seed=seed, progress=False)
        vanilla_arch = None
        for strategy in args.strategies:
            sdir = out / f"seed{seed}" / strategy
            s = run_search(space, dataset, data, SearchConfig(strategy=strategy,
                           budget=args.budget, seed=seed, progress=False), sdir / "search",
                           resume=(sdir / "search" / "summary.json").exists())
            arch = Architecture.load(sdir / "search" / "architecture.json")
            vanilla_arch = arch
            m = run_finetune(arch, dataset, data, ft, sdir / "model", search_dir=sdir / "search")
            rows.append({"seed": seed, "run": strategy, "architecture": m["architecture"],
                         "test_accuracy": m["test_accuracy"], "val_accuracy": m["val_accuracy"],
                         "curve": m["curve"], "search_steps": s["steps"],
                         "stopped_early": s["stopped_early"], "cost_saved": s["cost_saved"],
                         "search_seconds": s["wall_seconds"],
                         "finetune_seconds": m["wall_seconds"]})
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "curve"}), flush=True)
        m = run_finetune(vanilla_arch, dataset, data,
                         FinetuneConfig(steps=args.steps, seed=seed, progress=False, vanilla=True),
                         out / f"seed{seed}" / "vanilla")
        rows.append({"seed": seed, "run": "vanilla", "architecture": m["architecture"],
                     "test_accuracy": m["test_accuracy"], "val_accuracy": m["val_accuracy"],
                     "curve": m["curve"], "finetune_seconds": m["wall_seconds"]})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "curve"}), flush=True)
    summary = {}
    for run in args.strategies + ["vanilla"]:
        rs = [r for r in rows if r["run"] == run]
        entry = {"test_accuracy": _stats([r["test_accuracy"] for r in rs])}
        if run != "vanilla":
            entry["cost_saved"] = _stats([r["cost_saved"] for r in rs])
            entry["stopped_early"] = sum(r["stopped_early"] for r in rs)
            ratios = []
            for r in rs:
                v = next(x for x in rows if x["run"] == "vanilla" and x["seed"] == r["seed"])
                target = v["test_accuracy"]
                a, b = steps_to_reach(r["curve"], target), steps_to_reach(v["curve"], target)
                ratios.append(a / b if a and b else None)
            entry["steps_ratio_to_vanilla_final"] = _stats(ratios)
            entry["architectures"] = [r["architecture"] for r in rs]
        summary[run] = entry
    result = {"config": vars(args), "summary": summary, "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
