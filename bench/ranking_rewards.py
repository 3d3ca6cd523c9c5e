"""What sharing prefixes saves in a ranking phase: the plain and the prefix-sharing rewards of the
subnets a finished search scored, side by side in one process (docs/BENCHMARKS.md, "Ranking
rewards with shared prefixes").

Replays a search directory written with a ranking phase (`search_history.jsonl`, its
`summary.json` and `supernet.safetensors`): the distinct subnets its controller scored on the
fixed supernet, in the order it scored them, are scored again on the same data, once by the
plain path (`recalibrated_bn` + `ScopedEvaluator.score`, each subnet from scratch) and once by a
`PrefixSharingScorer` per cache size. The rewards must be equal bit for bit (the benchmark
stops if not) and equal to the recorded ones. The two paths alternate in blocks of subnets, so
that machine drift hits both.

    python bench/ranking_rewards.py --search runs/bench-d1/photos/seed0/reinforce/search \\
        --task photos --train-per-class 30 --max-mib 128 512 --out runs/bench-ranking
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from safetensors.torch import load_file

from archft.data import DataConfig, load_dataset
from archft.search import SearchConfig, SearchRun
from archft.search.scoring import PrefixSharingScorer
from archft.space import SpaceConfig

BLOCK = 10  # subnets per timed block


def scored_subnets(search: Path, ranking_from: int) -> list[tuple[tuple[int, ...], float]]:
    """The distinct subnets the ranking phase scored, in order, with their recorded rewards."""
    seen: dict[tuple[int, ...], float] = {}
    for line in (search / "search_history.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["step"] <= ranking_from:
            continue
        for arch, reward in row.get("samples") or [(row["arch"], row["reward"])]:
            seen.setdefault(tuple(arch), reward)
    return list(seen.items())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--search", required=True, help="a finished search directory")
    p.add_argument("--task", required=True)
    p.add_argument("--train-per-class", type=int, default=None)
    p.add_argument("--max-mib", nargs="+", type=int, default=[512])
    p.add_argument("--limit", type=int, default=None, help="only the first N subnets")
    p.add_argument("--out", default="runs/bench-ranking")
    args = p.parse_args()
    search = Path(args.search)
    summary = json.loads((search / "summary.json").read_text())
    data = DataConfig(args.task, summary["image_size"], train_per_class=args.train_per_class)
    dataset = load_dataset(data)
    if dataset.fingerprint() != summary["dataset_fingerprint"]:
        raise SystemExit(f"{args.task} with {args.train_per_class} per class is not the data "
                         f"{search} searched")
    space = SpaceConfig(base=summary["base"], scope=summary["scope"]).build(len(dataset.classes))
    config = SearchConfig.from_dict({**summary["config"], "progress": False})
    run = SearchRun(space, dataset, data, config, Path(args.out) / "scratch",
                    init=load_file(str(search / "supernet.safetensors")))
    subnets = scored_subnets(search, run.ranking_from)[:args.limit]
    scorers = {mib: PrefixSharingScorer(space, run.val, run.recal, config.reward, mib << 20)
               for mib in args.max_mib}
    seconds = {"plain": 0.0, **{mib: 0.0 for mib in scorers}}
    rewards: dict = {k: [] for k in seconds}
    for i in range(0, len(subnets), BLOCK):
        block = [a for a, _ in subnets[i:i + BLOCK]]
        for kind in seconds:
            started = time.perf_counter()
            for arch in block:
                run.supernet.set_architecture(arch)
                rewards[kind].append(run._score(None) if kind == "plain"
                                     else scorers[kind].score(run.supernet))
            seconds[kind] += time.perf_counter() - started
        print(f"{i + len(block)}/{len(subnets)} subnets: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()), flush=True)
    recorded = [r for _, r in subnets]
    for kind, values in rewards.items():
        if values != rewards["plain"]:
            raise SystemExit(f"{kind}: rewards differ from the plain path")
    result = {"search": str(search), "subnets": len(subnets),
              "recorded_rewards_reproduced": rewards["plain"] == recorded,
              "plain_seconds": round(seconds["plain"], 2),
              "sharing": [{"max_mib": mib, "seconds": round(seconds[mib], 2),
                           "speedup": round(seconds["plain"] / seconds[mib], 2),
                           "steps_shared": round(s.shared, 4),
                           "mib_held": round(s.bytes / 2**20, 1), "prefixes_held": len(s.cache)}
                          for mib, s in scorers.items()]}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{summary['dataset']}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
