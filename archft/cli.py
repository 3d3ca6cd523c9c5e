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
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{space.base} / {space.scope}: {space.num_decisions} decisions, "
          f"{space.num_subnets:,} subnets (2^{summary['log2_subnets']:g})")
    width = max(len(d.layer) for d in space.decisions)
    for d in summary["decisions"]:
        print(f"  {d['layer']:<{width}}  {' | '.join(d['candidates'])}   (base: {d['base']})")
    print(f"trainable: {', '.join(space.trainable)}")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from archft.data import SPLITS, DataConfig, load_dataset
    from archft.io import atomic_write_json

    ds = load_dataset(DataConfig(args.dataset, args.image_size, args.seed, download=args.download))
    counts = ds.counts()
    summary = {"dataset": ds.name, "classes": ds.classes, "fingerprint": ds.fingerprint(),
               "images": {s: sum(counts[s].values()) for s in SPLITS}, "per_class": counts,
               "resident": ds.images is not None}
    if args.manifest:
        atomic_write_json(args.manifest, {"summary": summary, "records": ds.manifest()})
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        n = summary["images"]
        print(f"{ds.name}: {len(ds.classes)} classes, train {n['train']} / val {n['val']} / "
              f"test {n['test']} images, fingerprint {summary['fingerprint'][:16]}")
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
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_space)

    p = sub.add_parser("data", help="load, split and summarise a dataset")
    p.add_argument("--dataset", default="digits", help="digits, cifar10:ROOT or imagefolder:PATH")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--download", action="store_true", help="download CIFAR-10 if missing")
    p.add_argument("--manifest", help="write the manifest (JSON) here")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_data)
    return parser




def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `archft` console script.

    Returns:
        The exit status: 0 on success, 1 for a user error, 2 for bad command-line usage.
    """
    args = build_parser().parse_args(argv)
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
