"""The `archft` command line.

Every command that runs something takes a run configuration (`--config FILE`, the same YAML
`run.py` takes) and `--set key=value` overrides for any field of it (`--set search.warmup=0.1`);
its flags are shorthands for the most used fields and win over the file, `--set` wins over both.
Defaults come from the configuration classes, never from here.

User errors (`ArchftError`, bad options) print one line, `archft: error: ...`, and exit non-zero
without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any, Sequence

from archft.core.errors import ArchftError, ConfigError

# Flag (argparse dest) -> the run-configuration fields it sets. `{run}` is the command's own
# section (search or finetune) for the flags every training command has.
DATA_FLAGS = {"dataset": "data.source", "image_size": "data.image_size",
              "data_seed": "data.seed", "download": "data.download", "flip": "data.flip",
              "train_per_class": "data.train_per_class", "patches": "data.patches",
              "patch_side": "data.patch_side"}
SPACE_FLAGS = {"base": "space.base", "weights": "space.weights", "scope": "space.scope",
               "kernels": "space.kernels", "expansions": "space.expansions",
               "remap": "space.remap", "depth": "space.depth"}
RUN_FLAGS = {"seed": "{run}.seed", "device": "{run}.device", "amp": "{run}.amp",
             "feature_cache": "{run}.features.cache", "feature_views": "{run}.features.views",
             "progress": "{run}.progress", "batch_size": "{run}.batch_size", "lr": "{run}.lr"}
SEARCH_FLAGS = {"strategy": "search.strategy", "budget": "search.budget",
                "controller_lr": "search.controller_lr",
                "controller_steps": "search.controller_steps", "reward": "search.reward",
                "warmup": "search.warmup", "ranking": "search.ranking",
                "sampling": "search.sampling",
                "bn_recalibration": "search.bn_recalibration",
                "early_stop": "search.early_stop.enabled", "tau": "search.early_stop.tau",
                "window": "search.early_stop.window", "eps": "search.early_stop.eps",
                "checkpoint_every": "search.checkpoint_every"}
FINETUNE_FLAGS = {"steps": "finetune.steps", "init": "finetune.init",
                  "vanilla": "finetune.vanilla", "eval_every": "finetune.eval_every"}
# What `archft search` prints last, one `name=value` per line as Katib's StdOut metrics collector
# reads them (k8s/katib-experiment.yaml): fields of the search summary, by their one name, and
# with --then-finetune the pick's validation accuracy after stage 2 (TRIAL_METRIC: the fine-tuned
# model's own name, as in its metrics.json and the evaluation).
SEARCH_METRICS = ("supernet_val_accuracy", "search_cost_saved")
TRIAL_METRIC = "val_accuracy"


def learning_rates_arg(text: str) -> float | list[float]:
    """argparse type of `archft finetune --lr`: a rate, or comma-separated rates to choose from
    on validation (`FinetuneConfig.lr` checks them)."""
    try:
        rates = [float(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a learning rate or comma-separated rates, "
                                         f"got {text!r}") from None
    return rates[0] if len(rates) == 1 else rates


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


def _signed_ints(text: str) -> tuple[int, ...]:
    """`--depth -1,0,1` (argparse would read a leading minus as an option: pass `--depth=-1,0,1`
    or `--depth " -1,0,1"`; both work)."""
    return _ints(text.strip())


def _default(field: str) -> Any:
    """The default of a dotted run-configuration field (for help texts)."""
    from archft.runconfig import RunConfig

    node: Any = RunConfig()
    for part in field.split("."):
        node = getattr(node, part)
    return node


def run_config(args: argparse.Namespace, flags: dict[str, str], run: str = "search"):
    """The command's run configuration: `--config` (or the defaults), then the flags given,
    then `--set`."""
    from archft.runconfig import RunConfig, load_run_config

    config = load_run_config(args.config) if args.config else RunConfig()
    plain = config.to_dict()
    for dest, field in flags.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        *parents, leaf = field.format(run=run).split(".")
        node = plain
        for part in parents:
            node = node[part]
        node[leaf] = list(value) if isinstance(value, tuple) else value
    config = RunConfig.from_dict(plain)
    return config.with_overrides(args.set) if args.set else config


# ---------------------------------------------------------------------------------------------
# Commands


def _cmd_space(args: argparse.Namespace) -> int:
    config = run_config(args, {**SPACE_FLAGS})
    space = config.space.build(args.num_classes)
    summary = space.summary()
    if args.image_size:
        summary["inert_kernel_decisions"] = space.inert_kernels(args.image_size)
    summary["cost"] = space_cost(space, args.image_size or config.data.image_size)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{space.base} / {space.scope}: {space.num_decisions} decisions, "
          f"{space.num_subnets:,} subnets (2^{summary['log2_subnets']:g})")
    width = max(len(d.layer) for d in space.decisions)
    for d in summary["decisions"]:
        print(f"  {d['layer']:<{width}}  {' | '.join(d['candidates'])}   (base: {d['base']})")
    print(f"trainable: {', '.join(space.trainable)}")
    c = summary["cost"]
    base = (f"base {c['base_madds'] / 1e6:.1f} M MAdds ({c['base_scope_madds'] / 1e6:.1f} M in "
            f"the scope), {c['base_params'] / 1e6:.2f} M params; " if "base_madds" in c else "")
    print(f"cost at {c['image_size']} px: {base}the space spans {c['min_madds'] / 1e6:.1f}-"
          f"{c['max_madds'] / 1e6:.1f} M MAdds")
    for d in summary.get("inert_kernel_decisions", []):
        print(f"note: at {args.image_size} px {d['layer']} sees "
              f"{'x'.join(map(str, d['input']))} maps, so these compute the same function: "
              + "; ".join(" = ".join(g) for g in d["equivalent"]))
    return 0


def space_cost(space, image_size: int) -> dict:
    """The base's MAdds and parameters and the space's MAdds range at `image_size`."""
    from archft.nas.cost import cost_table

    table = cost_table(space, image_size)
    base = table.of(space.base_architecture) if space.base_architecture else {}
    return {"image_size": image_size, **{f"base_{k}": v for k, v in base.items()},
            **table.bounds()}


def _cmd_data(args: argparse.Namespace) -> int:
    from archft.core.io import atomic_write_json
    from archft.data import SPLITS, load_dataset

    ds = load_dataset(run_config(args, DATA_FLAGS).data)
    counts = ds.counts()
    summary = {"dataset": ds.name, "classes": ds.classes, "fingerprint": ds.fingerprint(),
               "images": {s: sum(counts[s].values()) for s in SPLITS}, "per_class": counts,
               "resident": ds.images is not None}
    if args.manifest:
        atomic_write_json(args.manifest, {"summary": summary, "records": ds.manifest()})
    if args.materialize:
        from archft.data.survey import materialize

        materialize(ds, args.materialize)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        n = summary["images"]
        print(f"{ds.name}: {len(ds.classes)} classes, train {n['train']} / val {n['val']} / "
              f"test {n['test']} images, fingerprint {summary['fingerprint'][:16]}")
    return 0


def search_run_config(args: argparse.Namespace):
    """The run configuration `archft search` runs with (its flags parsed into `args`)."""
    return run_config(args, {**DATA_FLAGS, **SPACE_FLAGS, **RUN_FLAGS, **SEARCH_FLAGS})


def _cmd_search(args: argparse.Namespace) -> int:
    from archft.data import load_dataset
    from archft.search import run_search

    config = search_run_config(args)
    if args.then_finetune and os.path.realpath(args.then_finetune) == os.path.realpath(args.out):
        raise ConfigError(f"--then-finetune {args.then_finetune}: the model needs its own "
                          f"directory, not the search's (--out)")
    dataset = load_dataset(config.data)
    space = config.space.build(len(dataset.classes))
    try:
        s = run_search(space, dataset, config.data, config.search, args.out, resume=args.resume)
    except KeyboardInterrupt:
        print(f"archft: interrupted; continue with the same command and --resume "
              f"(checkpoint in {args.out})", file=sys.stderr)
        return 130
    stop = (f"early-stopped at step {s['early_stop_step']} of {s['search_budget']} "
            f"({100 * s['search_cost_saved']:.1f}% of the search saved)" if s["stopped_early"]
            else f"ran its full budget of {s['search_budget']} steps")
    print(f"{s['strategy']} search {stop}; architecture {' '.join(s['architecture'])}, "
          f"supernet val accuracy {100 * s['supernet_val_accuracy']:.2f}%; outputs in {args.out}")
    metrics = {name: s[name] for name in SEARCH_METRICS}
    if args.then_finetune:
        metrics[TRIAL_METRIC] = _finetune_pick(args.out, args.then_finetune, dataset, config)
    for name, value in metrics.items():
        print(f"{name}={value:.6f}")
    return 0


def _finetune_pick(search_dir: str, out: str, dataset, config) -> float:
    """`archft search --then-finetune`: stage 2 of the search's pick with the configuration's
    `finetune` section, in the same process (what `archft finetune --architecture
    SEARCH_DIR/architecture.json` gives, with the same configuration); its validation accuracy,
    the objective a tuner of the search should maximise (the deliverable's accuracy, not the
    supernet's)."""
    from pathlib import Path

    from archft.core import rundirs
    from archft.finetune import run_finetune
    from archft.space import Architecture

    arch = Architecture.load(Path(search_dir) / rundirs.SEARCH.architecture)
    m = run_finetune(arch, dataset, config.data, config.finetune, out, search_dir=search_dir)
    print(f"stage 2 of the pick: val {100 * m['val_accuracy']:.2f}% after {m['finetune_steps']} "
          f"steps at lr {m['lr']:g}{lr_choice(m)}; model in {out}")
    return m["val_accuracy"]


def _cmd_finetune(args: argparse.Namespace) -> int:
    from pathlib import Path

    from archft.data import load_dataset
    from archft.finetune import run_finetune
    from archft.space import Architecture

    config = run_config(args, {**DATA_FLAGS, **RUN_FLAGS, **FINETUNE_FLAGS}, run="finetune")
    dataset = load_dataset(config.data)
    arch = Architecture.load(args.architecture)
    m = run_finetune(arch, dataset, config.data, config.finetune, args.out,
                     search_dir=Path(args.architecture).parent)
    print(f"{m['kind']} fine-tuning of {' '.join(m['architecture'])}: val "
          f"{100 * m['val_accuracy']:.2f}%, test {100 * m['test_accuracy']:.2f}% after "
          f"{m['finetune_steps']} steps at lr {m['lr']:g}{lr_choice(m)}; model in {args.out}")
    return 0


def lr_choice(metrics: dict) -> str:
    """` (chosen on validation: 0.02 93.1%, ...)` for a model whose stage-2 rate was chosen
    from several (`FinetuneConfig.lr`), else ``."""
    sweep = metrics.get("lr_sweep")
    if not sweep:
        return ""
    return " (chosen on validation: " + ", ".join(
        f"{p['lr']:g} {100 * p['val_accuracy']:.2f}%" for p in sweep) + ")"


def _cmd_export(args: argparse.Namespace) -> int:
    from archft.data import load_dataset
    from archft.export import run_export

    data = run_config(args, DATA_FLAGS).data
    r = run_export(args.model, load_dataset(data), data, args.out)
    lat = r["latency"]
    print(f"model.onnx: test accuracy {100 * r['onnx_test_accuracy']:.2f}% (torch "
          f"{100 * r['test_accuracy']:.2f}%), top-1 agreement "
          f"{100 * r['onnx_top1_agreement']:.2f}%, max logit difference "
          f"{r['onnx_max_logit_difference']:.2e}; batch 1: onnxruntime "
          f"{lat['onnxruntime_batch1_ms']:.2f} ms vs torch {lat['torch_batch1_ms']:.2f} ms; "
          f"outputs in {args.out}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from archft.export import compare, render, write

    result = compare(args.model_a, args.model_b, args.target,
                     "val_accuracy" if args.val else "test_accuracy")
    print(render(result), end="")
    write(result, args.out)
    return 0


# ---------------------------------------------------------------------------------------------
# The parser


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE",
                   help="run configuration (YAML, as run.py takes: its `parameters`)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override any field, e.g. search.budget=50 data.flip=false")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    d = _default
    p.add_argument("--dataset", help="digits, photos, textures, cifar10:ROOT or imagefolder:PATH "
                   f"(default {d('data.source')})")
    p.add_argument("--image-size", type=int, help=f"model input side (default "
                   f"{d('data.image_size')})")
    p.add_argument("--data-seed", type=int, help="seed of the train/val/test split")
    p.add_argument("--download", action="store_const", const=True,
                   help="download CIFAR-10 if missing")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction,
                   help="random horizontal flips in training (default: off for digits, else on)")
    p.add_argument("--train-per-class", type=int,
                   help="few-shot: keep at most this many training images per class")
    p.add_argument("--patches", type=int, nargs=3, metavar=("TRAIN", "VAL", "TEST"),
                   help="photos/textures: patches per class and split (default 120 30 60)")
    p.add_argument("--patch-side", type=float, nargs=2, metavar=("MIN", "MAX"),
                   help="photos/textures: patch side as fractions of the photograph's shorter "
                   "side")


def _add_space_args(p: argparse.ArgumentParser) -> None:
    d = _default
    p.add_argument("--base", help=f"resnet18, resnet50, mobilenet_v2, efficientnet_lite0 "
                   f"(default {d('space.base')})")
    p.add_argument("--weights", help="imagenet, none or a state-dict path")
    p.add_argument("--scope", help=f"small, medium, large or full (default {d('space.scope')})")
    p.add_argument("--kernels", type=_ints, help="candidate kernels, e.g. 3,5")
    p.add_argument("--expansions", type=_ints, help="MBConv candidate expansions, e.g. 3,6")
    p.add_argument("--remap", help="center (function-preserving) or random")
    p.add_argument("--depth", type=_signed_ints,
                   help="depth offsets per scoped stage of an MBConv base, e.g. -1,0,1: its last "
                        "block may be skipped and one new block (started as the identity) added")


def _add_run_args(p: argparse.ArgumentParser, run: str) -> None:
    d = _default
    p.add_argument("--seed", type=int, help="seeds batches, augmentation and sampling")
    p.add_argument("--device", help="auto, cpu or cuda")
    p.add_argument("--no-amp", dest="amp", action="store_const", const=False,
                   help="no bf16 autocast on CUDA")
    p.add_argument("--feature-cache", action=argparse.BooleanOptionalAction,
                   help="train the scope on cached frozen-prefix features when they fit")
    p.add_argument("--feature-views", type=int, help=f"augmented views cached per training "
                   f"image (default {d(f'{run}.features.views')})")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction,
                   help="progress bar (default: on a terminal)")
    p.add_argument("--batch-size", type=int, help=f"default {d(f'{run}.batch_size')}")
    if run == "finetune":
        p.add_argument("--lr", type=learning_rates_arg, help=f"SGD peak learning rate, or "
                       f"several (0.02,0.05,0.1) to fine-tune at each and keep the best on "
                       f"validation (default {d(f'{run}.lr')})")
    else:
        p.add_argument("--lr", type=float, help=f"SGD learning rate (default {d(f'{run}.lr')})")
    p.add_argument("--threads", type=threads_arg,
                   help="CPU threads of torch (default: one per core); recorded in the outputs")


def _add_search_args(p: argparse.ArgumentParser) -> None:
    d = _default
    p.add_argument("--strategy", help=f"reinforce, random or darts (default "
                   f"{d('search.strategy')})")
    p.add_argument("--budget", type=int, help=f"supernet training steps (default "
                   f"{d('search.budget')})")
    p.add_argument("--controller-lr", type=float, help="controller Adam learning rate")
    p.add_argument("--controller-steps", type=int, help="controller updates per supernet step")
    p.add_argument("--reward", help="accuracy, neg_loss or margin on validation images")
    p.add_argument("--warmup", type=float, help="fraction of the budget trained with fair "
                   "sampling before the controller learns")
    p.add_argument("--ranking", type=float, help="fraction of the budget, at its end, in which "
                   "the supernet is fixed and only the controller learns")
    p.add_argument("--sampling", help="controller (ENAS) or fair: how supernet steps pick "
                   "their subnet")
    p.add_argument("--bn-recalibration", type=int, help="training batches that recompute a "
                   "subnet's BN statistics before its reward (0: off)")
    p.add_argument("--no-early-stop", dest="early_stop", action="store_const", const=False,
                   help="always run the full budget")
    p.add_argument("--tau", type=float, help="early stop: settled probability")
    p.add_argument("--window", type=int, help="early stop: window in updates")
    p.add_argument("--eps", type=float, help="early stop: reward plateau")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    p.add_argument("--resume", action="store_true",
                   help="continue the search in --out (start it if there is none)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--then-finetune", metavar="DIR",
                   help="then fine-tune the pick (the configuration's finetune section) into "
                   f"DIR and print its validation accuracy as {TRIAL_METRIC}=... (a tuner's "
                   "objective, k8s/katib-experiment.yaml)")


def _add_finetune_args(p: argparse.ArgumentParser) -> None:
    d = _default
    p.add_argument("--architecture", required=True, help="architecture.json of a search")
    p.add_argument("--steps", type=int, help=f"training steps (default {d('finetune.steps')})")
    p.add_argument("--init", help="pretrained (default) or supernet: the searched weights "
                   "(measured no better than pretrained, and worse with 30 images per "
                   "class: docs/BENCHMARKS.md)")
    p.add_argument("--vanilla", action="store_const", const=True,
                   help="fine-tune the unmodified base with the same scope (the baseline)")
    p.add_argument("--eval-every", type=int, help="steps between points of the curves")
    p.add_argument("--out", required=True, help="model directory")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="archft", description="Architectural fine-tuning: search a scoped architecture "
        "around a pretrained base, then fine-tune its weights.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("space", help="summarise a search space")
    _add_space_args(p)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--image-size", type=int,
                   help="also report decisions whose kernels are equivalent at this input size")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_config_args(p)
    p.set_defaults(func=_cmd_space, usage_error=p.error)

    p = sub.add_parser("data", help="load, split and summarise a dataset")
    _add_data_args(p)
    p.add_argument("--manifest", help="write the manifest (JSON) here")
    p.add_argument("--materialize", metavar="DIR",
                   help="write the images as DIR/<split>/<class>/<n>.png (an image folder)")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_config_args(p)
    p.set_defaults(func=_cmd_data)

    p = sub.add_parser("search", help="stage 1: search an architecture in a scoped space")
    _add_space_args(p)
    _add_search_args(p)
    _add_data_args(p)
    _add_run_args(p, "search")
    _add_config_args(p)
    p.set_defaults(func=_cmd_search)

    p = sub.add_parser("finetune", help="stage 2: fine-tune an architecture (or the vanilla base)")
    _add_finetune_args(p)
    _add_data_args(p)
    _add_run_args(p, "finetune")
    _add_config_args(p)
    p.set_defaults(func=_cmd_finetune)

    p = sub.add_parser("export", help="export a model to ONNX and evaluate it in onnxruntime")
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument("--out", required=True, help="output directory")
    _add_data_args(p)
    _add_config_args(p)
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
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "space" and args.base is None and args.config is None:
        args.usage_error("the following arguments are required: --base (or --config)")
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
