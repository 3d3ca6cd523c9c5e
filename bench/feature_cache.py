"""Images/s of training on cached frozen-prefix features vs the full forward (issue 10, item 1).

A search step (supernet, a uniformly sampled subnet every step) and a fine-tune step (the
materialised base architecture), each on both paths, with the real data path (digits upsampled
to the input size, random crops on the full path, `views` cached views on the cached one). The
four step kinds run in alternating timed blocks in one process, so that machine drift hits all
of them. Goal: cached >= 3x the full path at 128 px, medium scope.

`--depthwise both` also times every step kind with the in-scope depthwise convs as PyTorch's
conv and as the banded matrix product of `archft.models.depthwise` (the default), in the same
alternating blocks.

    python bench/feature_cache.py --image-size 128 --scope medium [--depthwise both]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from archft.core.rng import generator
from archft.data import DataConfig, load_dataset
from archft.engine import (
    FeatureCacheConfig,
    resolve_device,
    to_device,
    train_batches,
    train_step,
    transforms,
)
from archft.models import depthwise
from archft.nas import build_subnet, build_supernet
from archft.space import SearchSpace


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base", default="efficientnet_lite0")
    p.add_argument("--scope", default="medium")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--views", type=int, default=FeatureCacheConfig().views)
    p.add_argument("--steps", type=int, default=5, help="steps per timed block")
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--device", default="auto")
    p.add_argument("--depthwise", choices=("banded", "conv", "both"), default="banded",
                   help="in-scope depthwise convs: banded matrix (default), PyTorch's conv, or "
                        "both side by side")
    args = p.parse_args()
    band_entries = {"banded": depthwise.BANDED_MAX_ENTRIES, "conv": 0}
    modes = list(band_entries) if args.depthwise == "both" else [args.depthwise]
    device = resolve_device(args.device)
    data = DataConfig("digits", args.image_size)
    dataset = load_dataset(data)
    space = SearchSpace.from_base(args.base, args.scope, weights="imagenet",
                                  num_classes=len(dataset.classes))
    train_tf, _ = transforms(space.spec.preprocessing, data, dataset, device)
    supernet = to_device(build_supernet(space), device)
    subnet = to_device(build_subnet(space, space.base_architecture), device)
    nets = {"search": supernet, "finetune": subnet}
    cache = FeatureCacheConfig(views=args.views)
    batches, build = {}, {}
    for kind, net in nets.items():
        for path, cfg in (("full", FeatureCacheConfig(cache=False)), ("cached", cache)):
            b = train_batches(net, space.spec, space.trainable, dataset, train_tf,
                              args.batch_size, device, 0, cfg)
            batches[kind, path] = (b, b.stream(0))
            if b.info["cached"]:
                build[kind] = b.info
    opts = {k: torch.optim.SGD([q for q in n.parameters() if q.requires_grad], lr=0.01,
                               momentum=0.9) for k, n in nets.items()}
    step_no = {"n": 0}

    def step(kind: str, path: str) -> None:
        b, stream = batches[kind, path]
        if kind == "search":  # a new uniformly sampled subnet every step, as random search
            g = generator("cpu", 0, "bench", step_no["n"])
            supernet.set_architecture([int(torch.randint(len(d.candidates), (1,), generator=g))
                                       for d in space.decisions])
            step_no["n"] += 1
        train_step(nets[kind], b.forward, next(stream), opts[kind], device)

    def timed(kind: str, path: str, mode: str, n: int) -> float:
        depthwise.BANDED_MAX_ENTRIES = band_entries[mode]
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(n):
            step(kind, path)
        if device.type == "cuda":
            torch.cuda.synchronize()  # SYNC: timing
        return time.perf_counter() - t

    keys = [(*key, mode) for key in batches for mode in modes]
    for key in keys:  # warm-up
        timed(*key, 2)
    totals = {key: 0.0 for key in keys}
    for _ in range(args.blocks):
        for key in keys:
            totals[key] += timed(*key, args.steps)
    n = args.blocks * args.steps * args.batch_size
    ips = {f"{k}_{p}" + (f"_{m}" if len(modes) > 1 else ""): round(n / t, 1)
           for (k, p, m), t in totals.items()}
    sfx = f"_{modes[0]}" if len(modes) > 1 else ""
    result = {
        "base": args.base, "scope": args.scope, "image_size": args.image_size,
        "batch_size": args.batch_size, "views": args.views, "device": str(device),
        "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
        "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "train_images": len(dataset.labels("train")), "img_s": ips,
        "depthwise": modes,
        "speedup_search": round(ips[f"search_cached{sfx}"] / ips[f"search_full{sfx}"], 2),
        "speedup_finetune": round(ips[f"finetune_cached{sfx}"] / ips[f"finetune_full{sfx}"], 2),
        "cache_build_s": {k: v["seconds"] for k, v in build.items()},
        "cache_mib": round(build["search"]["bytes"] / 2**20, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
