"""The `archft` command line.

User errors (`ArchftError`, bad options) print one line, `archft: error: ...`, and exit non-zero
without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Sequence

from archft.errors import ArchftError


def threads_arg(text: str) -> int:
    """argparse type of `--threads` (here and in run.py): torch's CPU thread count, >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a thread count >= 1, got {text!r}")
    return value


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}") from None


def _cmd_space(args: argparse.Namespace) -> int:
    from archft.space import SearchSpace

    space = SearchSpace.from_base(args.base, args.scope, args.kernels, args.expansions,
                                  weights=args.weights, num_classes=args.num_classes)
    summary = space.summary()
    if args.image_size:
        summary["inert_kernel_decisions"] = space.inert_kernels(args.image_size)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{space.base} / {space.scope}: {space.num_decisions} decisions, "
          f"{space.num_subnets:,} subnets (2^{summary['log2_subnets']:g})")
    width = max(len(d.layer) for d in space.decisions)
    for d in summary["decisions"]:
        print(f"  {d['layer']:<{width}}  {' | '.join(d['candidates'])}   (base: {d['base']})")
    print(f"trainable: {', '.join(space.trainable)}")
    for d in summary.get("inert_kernel_decisions", []):
        print(f"note: at {args.image_size} px {d['layer']} sees "
              f"{'x'.join(map(str, d['input']))} maps, so these compute the same function: "
              + "; ".join(" = ".join(g) for g in d["equivalent"]))
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from archft.data import SPLITS, load_dataset
    from archft.io import atomic_write_json

    ds = load_dataset(_data_config(args))
    counts = ds.counts()
    summary = {"dataset": ds.name, "classes": ds.classes, "fingerprint": ds.fingerprint(),
               "images": {s: sum(counts[s].values()) for s in SPLITS}, "per_class": counts,
               "resident": ds.images is not None}
    if args.manifest:
        atomic_write_json(args.manifest, {"summary": summary, "records": ds.manifest()})
    if args.materialize:
        from archft.manifest import materialize

        materialize(ds, args.materialize)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        n = summary["images"]
        print(f"{ds.name}: {len(ds.classes)} classes, train {n['train']} / val {n['val']} / "
              f"test {n['test']} images, fingerprint {summary['fingerprint'][:16]}")
    return 0


def _data_config(args: argparse.Namespace):
    from archft.data import DataConfig

    return DataConfig(args.dataset, args.image_size, args.data_seed, download=args.download,
                      flip=args.flip, train_per_class=args.train_per_class)


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="digits",
                   help="digits, photos, textures, cifar10:ROOT or imagefolder:PATH")
    p.add_argument("--image-size", type=int, default=32, help="model input side (default 32)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the train/val/test split")
    p.add_argument("--download", action="store_true", help="download CIFAR-10 if missing")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="random horizontal flips in training (default: off for digits, else on)")
    p.add_argument("--train-per-class", type=int, default=None,
                   help="few-shot: keep at most this many training images per class")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    p.add_argument("--feature-cache", action=argparse.BooleanOptionalAction, default=True,
                   help="train the scope on cached frozen-prefix features when they fit "
                        "(default: on)")
    p.add_argument("--feature-views", type=int, default=None,
                   help="augmented views cached per training image (default 8)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: on a terminal)")
    p.add_argument("--threads", type=threads_arg, default=None,
                   help="CPU threads of torch (default: one per core); recorded in the outputs")


def _features(args: argparse.Namespace):
    from archft.features import FeatureCacheConfig

    views = {"views": args.feature_views} if args.feature_views is not None else {}
    return FeatureCacheConfig(cache=args.feature_cache, **views)


# What `archft search` prints last, one `name=value` per line as Katib's StdOut metrics collector
# reads them (k8s/katib-experiment.yaml): metric name -> field of the search summary.
SEARCH_METRICS = {"supernet_val_accuracy": "val_accuracy", "search_cost_saved": "cost_saved"}


def _cmd_search(args: argparse.Namespace) -> int:
    from archft.data import load_dataset
    from archft.earlystop import EarlyStopConfig
    from archft.search import SearchConfig, run_search
    from archft.space import SearchSpace

    early = EarlyStopConfig(enabled=not args.no_early_stop, tau=args.tau, window=args.window,
                            eps=args.eps)
    optional = {k: getattr(args, k) for k in ("reward", "warmup", "sampling", "bn_recalibration")
                if getattr(args, k) is not None}
    config = SearchConfig(strategy=args.strategy, budget=args.budget, batch_size=args.batch_size,
                          lr=args.lr, controller_lr=args.controller_lr,
                          controller_steps=args.controller_steps, early_stop=early,
                          features=_features(args), checkpoint_every=args.checkpoint_every,
                          seed=args.seed, device=args.device, amp=not args.no_amp,
                          progress=args.progress, **optional)
    data = _data_config(args)
    dataset = load_dataset(data)
    space = SearchSpace.from_base(args.base, args.scope, args.kernels, args.expansions,
                                  weights=args.weights, num_classes=len(dataset.classes),
                                  remap=args.remap)
    try:
        s = run_search(space, dataset, data, config, args.out, resume=args.resume)
    except KeyboardInterrupt:
        print(f"archft: interrupted; continue with the same command and --resume "
              f"(checkpoint in {args.out})", file=sys.stderr)
        return 130
    stop = (f"early-stopped at step {s['stop_step']} of {s['budget']} "
            f"({100 * s['cost_saved']:.1f}% of the search saved)" if s["stopped_early"]
            else f"ran its full budget of {s['budget']} steps")
    print(f"{s['strategy']} search {stop}; architecture {' '.join(s['architecture'])}, "
          f"supernet val accuracy {100 * s['val_accuracy']:.2f}%; outputs in {args.out}")
    for name, key in SEARCH_METRICS.items():
        print(f"{name}={s[key]:.6f}")
    return 0


def _cmd_finetune(args: argparse.Namespace) -> int:
    from pathlib import Path

    from archft.architecture import Architecture
    from archft.data import load_dataset
    from archft.finetune import FinetuneConfig, run_finetune

    data = _data_config(args)
    dataset = load_dataset(data)
    arch = Architecture.load(args.architecture)
    config = FinetuneConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                            init=args.init, vanilla=args.vanilla, eval_every=args.eval_every,
                            features=_features(args), seed=args.seed, device=args.device,
                            amp=not args.no_amp, progress=args.progress)
    m = run_finetune(arch, dataset, data, config, args.out,
                     search_dir=Path(args.architecture).parent)
    print(f"{m['kind']} fine-tuning of {' '.join(m['architecture'])}: val "
          f"{100 * m['val_accuracy']:.2f}%, test {100 * m['test_accuracy']:.2f}% after "
          f"{m['steps']} steps; model in {args.out}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from archft.data import load_dataset
    from archft.export import run_export

    data = _data_config(args)
    r = run_export(args.model, load_dataset(data), data, args.out)
    lat = r["latency"]
    print(f"model.onnx: test accuracy {100 * r['onnx_accuracy']:.2f}% (torch "
          f"{100 * r['torch_accuracy']:.2f}%), top-1 agreement {100 * r['top1_agreement']:.2f}%, "
          f"max logit difference {r['max_logit_difference']:.2e}; batch 1: onnxruntime "
          f"{lat['onnxruntime_batch1_ms']:.2f} ms vs torch {lat['torch_batch1_ms']:.2f} ms; "
          f"outputs in {args.out}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from archft.compare import compare, render, write

    result = compare(args.model_a, args.model_b, args.target,
                     "val_accuracy" if args.val else "test_accuracy")
    print(render(result), end="")
    write(result, args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="archft", description="Architectural fine-tuning: search a scoped architecture "
        "around a pretrained base, then fine-tune its weights.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("space", help="summarise a search space")
    p.add_argument("--base", required=True, help="resnet18, resnet50, mobilenet_v2, "
                   "efficientnet_lite0")
    p.add_argument("--scope", default="small", help="small, medium, large or full")
    p.add_argument("--kernels", type=_ints, default=None, help="candidate kernels, e.g. 3,5")
    p.add_argument("--expansions", type=_ints, default=None,
                   help="MBConv candidate expansions, e.g. 3,6")
    p.add_argument("--weights", default="imagenet", help="imagenet, none or a state-dict path")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--image-size", type=int, default=None,
                   help="also report decisions whose kernels are equivalent at this input size")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_space)

    p = sub.add_parser("data", help="load, split and summarise a dataset")
    _add_data_args(p)
    p.add_argument("--manifest", help="write the manifest (JSON) here")
    p.add_argument("--materialize", metavar="DIR",
                   help="write the images as DIR/<split>/<class>/<n>.png (an image folder)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_data)

    p = sub.add_parser("search", help="stage 1: search an architecture in a scoped space")
    p.add_argument("--base", default="efficientnet_lite0")
    p.add_argument("--weights", default="imagenet", help="imagenet, none or a state-dict path")
    p.add_argument("--scope", default="small", help="small, medium, large or full")
    p.add_argument("--kernels", type=_ints, default=None, help="candidate kernels, e.g. 3,5")
    p.add_argument("--expansions", type=_ints, default=None, help="MBConv expansions, e.g. 3,6")
    p.add_argument("--remap", default="center", help="center (default) or random")
    p.add_argument("--strategy", default="reinforce", help="reinforce, random or darts")
    p.add_argument("--budget", type=int, default=200, help="supernet training steps")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05, help="supernet SGD learning rate")
    p.add_argument("--controller-lr", type=float, default=3.5e-4)
    p.add_argument("--controller-steps", type=int, default=5,
                   help="controller updates per supernet step")
    p.add_argument("--reward", default=None,
                   help="accuracy, neg_loss or margin on validation images (see README)")
    p.add_argument("--warmup", type=float, default=None,
                   help="fraction of the budget trained with fair sampling before the "
                        "controller learns")
    p.add_argument("--sampling", default=None,
                   help="controller (ENAS) or fair: how supernet steps pick their subnet")
    p.add_argument("--bn-recalibration", type=int, default=None,
                   help="training batches that recompute a subnet's BN statistics before its "
                        "reward (0: off)")
    p.add_argument("--no-early-stop", action="store_true", help="always run the full budget")
    p.add_argument("--tau", type=float, default=0.9, help="early stop: settled probability")
    p.add_argument("--window", type=int, default=50, help="early stop: window in updates")
    p.add_argument("--eps", type=float, default=0.005, help="early stop: reward plateau")
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument("--resume", action="store_true",
                   help="continue the search in --out (start it if there is none)")
    p.add_argument("--out", required=True, help="output directory")
    _add_data_args(p)
    _add_run_args(p)
    p.set_defaults(func=_cmd_search)

    p = sub.add_parser("finetune", help="stage 2: fine-tune an architecture (or the vanilla base)")
    p.add_argument("--architecture", required=True, help="architecture.json of a search")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--init", default="pretrained", help="pretrained (default) or supernet")
    p.add_argument("--vanilla", action="store_true",
                   help="fine-tune the unmodified base with the same scope (the baseline)")
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--out", required=True, help="model directory")
    _add_data_args(p)
    _add_run_args(p)
    p.set_defaults(func=_cmd_finetune)

    p = sub.add_parser("export", help="export a model to ONNX and evaluate it in onnxruntime")
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument("--out", required=True, help="output directory")
    _add_data_args(p)
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("compare", help="compare two fine-tuned models")
    p.add_argument("model_a", help="model directory (e.g. two-stage)")
    p.add_argument("model_b", help="model directory (e.g. vanilla)")
    p.add_argument("--target", type=float, default=None,
                   help="target accuracy in 0..1 (default: the lower final accuracy)")
    p.add_argument("--val", action="store_true", help="compare validation, not test, curves")
    p.add_argument("--out", default=".", help="where compare.json and compare.md go")
    p.set_defaults(func=_cmd_compare)
    return parser




def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `archft` console script.

    Returns:
        The exit status: 0 on success, 1 for a user error, 2 for bad command-line usage.
    """
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None) is not None:
        import torch

        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except ArchftError as e:
        print(f"archft: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("archft: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
