"""Which search reward ranks subnets like their fine-tuned accuracy? (issue 10, item 2)

Trains one supernet with fair sampling (the search's supernet phase without a controller), then
scores a sample of architectures (the base's own and uniformly drawn ones) with every reward of
`archft.engine.SCORES` on the whole validation split, with and without BatchNorm recalibration,
fine-tunes every architecture with the stage-2 defaults and reports each reward's rank
correlation (Spearman, Kendall) with the fine-tuned test and validation accuracy.

    python bench/ranking.py --dataset photos --image-size 128 --scope medium --archs 12
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from scipy.stats import kendalltau, spearmanr

from archft.core.rng import generator
from archft.data import DataConfig, load_dataset
from archft.engine import (
    SCORES,
    ScopedEvaluator,
    recalibrated_bn,
    resolve_device,
    to_device,
    train_batches,
    transforms,
)
from archft.finetune import FinetuneConfig, run_finetune
from archft.nas import build_supernet
from archft.search import SearchConfig, run_search
from archft.search.earlystop import EarlyStopConfig
from archft.space import Architecture, SearchSpace

RECALIBRATION_BATCHES = 4


def sample_architectures(space: SearchSpace, n: int, seed: int) -> list[list[int]]:
    """The base's architecture and n - 1 distinct uniformly drawn ones."""
    archs = [space.base_architecture]
    g = generator("cpu", seed, "ranking")
    while len(archs) < n:
        a = [int(torch.randint(len(d.candidates), (1,), generator=g)) for d in space.decisions]
        if a not in archs:
            archs.append(a)
    return archs


def supernet_rewards(space, dataset, data, search_dir: Path, archs, seed: int) -> list[dict]:
    """Every reward of every architecture on the searched supernet (whole validation split)."""
    device = resolve_device("auto")
    supernet = build_supernet(space)
    supernet.load_state_dict(load_file(str(search_dir / "supernet.safetensors")))
    supernet = to_device(supernet, device)
    train_tf, eval_tf = transforms(space.spec.preprocessing, data, dataset, device)
    val = ScopedEvaluator(supernet, space.spec, space.trainable, dataset.split_images("val"),
                          dataset.labels("val"), eval_tf, device)
    batches = train_batches(supernet, space.spec, space.trainable, dataset, train_tf, 64, device,
                            seed)
    stream = batches.stream(0)
    recal = [next(stream)[0] for _ in range(RECALIBRATION_BATCHES)]
    rows = []
    for arch in archs:
        supernet.set_architecture(arch)
        row = {k: val.score(supernet, None, k) for k in SCORES}
        with recalibrated_bn(supernet, recal, batches.forward):
            row.update({f"{k}+bn": val.score(supernet, None, k) for k in SCORES})
        rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="photos")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--base", default="efficientnet_lite0")
    p.add_argument("--scope", default="medium")
    p.add_argument("--train-per-class", type=int, default=None,
                   help="few-shot: training images kept per class (default: all)")
    p.add_argument("--archs", type=int, default=12)
    p.add_argument("--budget", type=int, default=200, help="supernet steps")
    p.add_argument("--steps", type=int, default=FinetuneConfig().steps, help="fine-tuning")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/bench-ranking")
    args = p.parse_args()
    data = DataConfig(args.dataset, args.image_size, train_per_class=args.train_per_class)
    dataset = load_dataset(data)
    space = SearchSpace.from_base(args.base, args.scope, num_classes=len(dataset.classes))
    few = f"-{args.train_per_class}shot" if args.train_per_class else ""
    out = Path(args.out) / f"{args.dataset}{few}-{args.image_size}-{args.scope}-seed{args.seed}"
    started = time.perf_counter()
    search_dir = out / "supernet"
    run_search(space, dataset, data, SearchConfig(
        strategy="random", sampling="fair", budget=args.budget, controller_steps=1,
        seed=args.seed, progress=False, early_stop=EarlyStopConfig(enabled=False)), search_dir,
        resume=True)
    archs = sample_architectures(space, args.archs, args.seed)
    rewards = supernet_rewards(space, dataset, data, search_dir, archs, args.seed)
    rows = []
    for i, (arch, reward) in enumerate(zip(archs, rewards)):
        m = run_finetune(Architecture.of(space, arch), dataset, data,
                         FinetuneConfig(steps=args.steps, seed=args.seed, progress=False),
                         out / f"arch{i}")
        rows.append({"architecture": space.describe(arch), "base": arch == archs[0],
                     "test_accuracy": m["test_accuracy"], "val_accuracy": m["val_accuracy"],
                     "rewards": reward})
        print(json.dumps(rows[-1]), flush=True)
    correlation = {}
    for key in rewards[0]:
        r = [row["rewards"][key] for row in rows]
        correlation[key] = {
            target: {"spearman": round(float(spearmanr(r, t).statistic), 3),
                     "kendall": round(float(kendalltau(r, t).statistic), 3)}
            for target, t in (("test", [row["test_accuracy"] for row in rows]),
                              ("val", [row["val_accuracy"] for row in rows]))}
    tests = [row["test_accuracy"] for row in rows]
    result = {"config": vars(args), "machine": platform.processor() or platform.machine(),
              "threads": torch.get_num_threads(), "seconds": round(time.perf_counter() - started),
              "base_test_accuracy": tests[0], "best_test_accuracy": max(tests),
              "mean_test_accuracy": sum(tests) / len(tests), "correlation": correlation,
              "rows": rows}
    (out / "ranking.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=2))


if __name__ == "__main__":
    main()
