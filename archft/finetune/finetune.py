"""Stage 2, weight fine-tuning (seed 000, 3.2; seed 001, claim 7), and the vanilla baseline.

The searched architecture is materialised, everything before its scope stays frozen, and the
scope plus the head are fine-tuned with SGD and a cosine schedule. `vanilla=True` fine-tunes the
unmodified base with the same scope and budget: last-k fine-tuning, the paper's baseline.

The model directory holds `architecture.json`, `weights.safetensors` and `metrics.json` (final
val/test accuracy and their curves against iterations) plus `accuracy_curve.png`. Decisions use
the validation split only; the test curve is reported, as in the paper's Fig. 3, never used.

`lr` may be a list: stage 2 then fine-tunes once per rate, every time from the same starting
weights with the same batches, and keeps the model with the best final validation accuracy
(the first listed wins a tie). A fine-tuning in a sweep is the single-rate fine-tuning at that
rate, exactly, so a two-stage model and its vanilla baseline each get the rate their own
validation split prefers (docs/BENCHMARKS.md: the gain over vanilla moves with the rate).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn
from tqdm.auto import tqdm

from archft.core import rundirs
from archft.core.config import from_plain, require_positive_ints
from archft.core.errors import ConfigError, WeightsError
from archft.core.io import atomic_write_json, save_safetensors
from archft.data import DataConfig, Dataset
from archft.engine import (
    FeatureCacheConfig,
    ScopedEvaluator,
    Stepper,
    resolve_device,
    to_device,
    train_batches,
    transforms,
)
from archft.engine.plots import accuracy_curve
from archft.models import load_weights
from archft.models.cost import count_cost
from archft.nas import build_subnet, build_supernet
from archft.space import Architecture

INITS = ("pretrained", "supernet")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneConfig:
    """Attributes:
        steps: training iterations.
        batch_size: images per step.
        lr: peak SGD learning rate (cosine decay to 0), or a list of them to choose from on
            validation (one fine-tuning per rate; `learning_rates`).
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        warmup: linear warm-up steps.
        init: "pretrained" (remapped pretrained weights) or "supernet" (the searched weights).
        vanilla: fine-tune the unmodified base instead (the baseline).
        eval_every: steps between points of the val/test curves.
        features: training on cached frozen-prefix features (`archft.engine.features`).
        seed: seeds everything.
        device: "auto", "cpu" or "cuda".
        amp: bf16 autocast on CUDA.
        progress: progress bar (None: only on a terminal).
    """

    steps: int = 300
    batch_size: int = 64
    lr: float | tuple[float, ...] = 0.05
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup: int = 0
    init: str = "pretrained"
    vanilla: bool = False
    eval_every: int = 25
    features: FeatureCacheConfig = field(default_factory=FeatureCacheConfig)
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    progress: bool | None = None

    def __post_init__(self):
        if self.init not in INITS:
            raise ConfigError(f"unknown init {self.init!r}; choose one of {', '.join(INITS)}")
        require_positive_ints(self, "steps", "batch_size", "eval_every")
        object.__setattr__(self, "lr", _learning_rates(self.lr))

    @property
    def learning_rates(self) -> tuple[float, ...]:
        """The peak rates to fine-tune with: one, or the sweep chosen from on validation."""
        return self.lr if isinstance(self.lr, tuple) else (self.lr,)

    @classmethod
    def from_dict(cls, data: dict) -> "FinetuneConfig":
        """Builds a config from plain data (YAML/JSON), refusing unknown fields."""
        return from_plain(cls, data, "finetune", features=FeatureCacheConfig)


def _learning_rates(value) -> float | tuple[float, ...]:
    """`lr` checked: a positive number, or a list of distinct ones (a list of one is its
    number). Raises ConfigError naming the option otherwise."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    try:
        rates = [float(r) for r in items if not isinstance(r, bool)]
    except (TypeError, ValueError):
        rates = []
    if (not rates or len(rates) != len(items) or len(set(rates)) != len(rates)
            or not all(math.isfinite(r) and r > 0 for r in rates)):
        raise ConfigError(f"finetune option 'lr' must be a positive number or a list of "
                          f"distinct ones, got {value!r}")
    return tuple(rates) if len(rates) > 1 else rates[0]


def _load_supernet_weights(arch: Architecture, search_dir: Path) -> nn.Module:
    path = search_dir / rundirs.SEARCH.supernet
    if not path.is_file():
        raise ConfigError(f"--init supernet needs {path} (written by the search); run the search "
                          "there or use --init pretrained")
    supernet = build_supernet(arch.space)
    try:
        supernet.load_state_dict(load_file(str(path)))
    except (RuntimeError, OSError) as e:
        raise WeightsError(f"{path} does not match {arch.space.base}/{arch.space.scope}: "
                           f"{str(e).splitlines()[0]}") from None
    return supernet.materialize(arch.choices)


def build_model(arch: Architecture, init: str = "pretrained", vanilla: bool = False,
                search_dir: str | Path | None = None) -> tuple[nn.Module, Architecture]:
    """The network stage 2 starts from, frozen outside the scope.

    Args:
        arch: the searched architecture (its space carries base, scope and weights).
        init: "pretrained" or "supernet".
        vanilla: use the unmodified base (same scope) instead of `arch`.
        search_dir: where `supernet.safetensors` is, for init="supernet".

    Returns:
        (network, the architecture it implements).
    """
    space = arch.space
    if vanilla:
        base = space.base_architecture
        if base is None:
            raise ConfigError(f"the base's own ops are not among the candidates "
                              f"{space.kernels}; vanilla fine-tuning needs them")
        # build_subnet of the base's own choices computes exactly the base, in the same module
        # layout as every other model directory (torchvision MobileNetV2 blocks become MBConv).
        return build_subnet(space, base), Architecture.of(space, base)
    if init == "supernet":
        return _load_supernet_weights(arch, Path(search_dir or ".")), arch
    return build_subnet(space, arch.choices), arch


def load_model(model_dir: str | Path) -> tuple[nn.Module, Architecture, dict]:
    """Loads a model directory written by `run_finetune`.

    Returns:
        (network in eval mode on the CPU, its architecture, its metrics).

    Raises:
        ArchitectureError / WeightsError / ConfigError: missing or mismatching files, named.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ConfigError(f"model directory not found: {model_dir}")
    arch = Architecture.load(model_dir / rundirs.MODEL.architecture)
    skeleton = dataclasses.replace(arch.space, weights="none")  # weights come from the file
    net = build_subnet(skeleton, arch.choices)
    path = model_dir / rundirs.MODEL.weights
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    load_weights(net, load_file(str(path)), str(path))
    metrics_path = model_dir / rundirs.MODEL.metrics
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    return net.eval(), arch, metrics


def run_finetune(arch: Architecture, dataset: Dataset, data: DataConfig, config: FinetuneConfig,
                 out: str | Path, search_dir: str | Path | None = None) -> dict:
    """Fine-tunes inside the scope and writes the model directory (`rundirs.MODEL`).

    Args:
        arch: the architecture to fine-tune (ignored but for its space when `vanilla`).
        dataset: the target dataset.
        data: its configuration.
        config: fine-tuning hyper-parameters.
        out: model directory.
        search_dir: directory of the search (for init="supernet").

    Returns:
        The metrics (also in `metrics.json`).
    """
    c, out = config, Path(out)
    device = resolve_device(c.device)
    net, arch = build_model(arch, c.init, c.vanilla, search_dir)
    space = arch.space
    if space.num_classes != len(dataset.classes):
        raise ConfigError(f"the architecture has {space.num_classes} classes, the dataset "
                          f"{len(dataset.classes)}")
    net = to_device(net, device)
    train_tf, eval_tf = transforms(space.spec.preprocessing, data, dataset, device)
    batches = train_batches(net, space.spec, space.trainable, dataset, train_tf, c.batch_size,
                            device, c.seed, c.features, c.amp)
    evals = {s: ScopedEvaluator(net, space.spec, space.trainable, dataset.split_images(s),
                                dataset.labels(s), eval_tf, device, c.amp)
             for s in ("val", "test") if len(dataset.indices(s))}
    if "val" not in evals:
        raise ConfigError("the validation split is empty")
    rates = c.learning_rates
    sweeping = len(rates) > 1

    def snapshot() -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in net.state_dict().items()}

    start = snapshot() if sweeping else None
    sweep, best = [], None
    for lr in rates:
        if sweeping:
            net.load_state_dict(start)
        opt, sched = _optimizer(net, c, lr)
        started = time.perf_counter()
        curve = _train(net, Stepper(net, batches, opt, device, c.amp, c.seed), sched, evals, c,
                       lr if sweeping else None)
        sweep.append({"lr": lr, "val_accuracy": curve[-1]["val_accuracy"],
                      "test_accuracy": curve[-1]["test_accuracy"],
                      "seconds": round(time.perf_counter() - started, 2)})
        if best is None or curve[-1]["val_accuracy"] > best[1][-1]["val_accuracy"]:
            best = (lr, curve, snapshot() if sweeping else None)
    lr, curve, state = best
    if sweeping:
        net.load_state_dict(state)
        log.info("stage-2 learning rate %g chosen on validation from %s", lr,
                 ", ".join(f"{p['lr']:g}: {100 * p['val_accuracy']:.2f}%" for p in sweep))
    wall = sum(p["seconds"] for p in sweep)
    metrics = _metrics(net, arch, dataset, data, c, curve, wall, batches.info, device)
    metrics |= {"lr": lr, "lr_sweep": sweep if sweeping else None,
                "test_correct": evals["test"].correct(net) if "test" in evals else None,
                "val_correct": evals["val"].correct(net)}
    _write(out, net, arch, metrics)
    return metrics


def _optimizer(net: nn.Module, c: FinetuneConfig, lr: float):
    """SGD (Nesterov) at peak rate `lr` over the trainable parameters; linear warm-up, then
    cosine to 0."""
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=c.momentum, weight_decay=c.weight_decay,
                          nesterov=True)

    def lr_at(step: int) -> float:
        if step < c.warmup:
            return (step + 1) / c.warmup
        t = (step - c.warmup) / max(c.steps - c.warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * t))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_at)


def _train(net: nn.Module, stepper: Stepper, sched, evals: dict[str, ScopedEvaluator],
           c: FinetuneConfig, lr: float | None = None) -> list[dict]:
    """The training loop; returns the val/test curve, a point every `eval_every` steps. `lr`
    names the rate in the progress bar (a sweep's)."""
    kind = ("vanilla" if c.vanilla else "two-stage") + (f" lr={lr:g}" if lr is not None else "")
    bar = tqdm(total=c.steps, desc=f"finetune/{kind}", unit="step", dynamic_ncols=True,
               disable=(not c.progress) if c.progress is not None else None)
    curve: list[dict] = []

    def record(step: int) -> None:
        point = {"step": step, "val_accuracy": evals["val"].accuracy(net),
                 "test_accuracy": evals["test"].accuracy(net) if "test" in evals else None,
                 "train_loss": stepper.mean_loss()}  # SYNC: once per curve point
        curve.append(point)
        bar.set_postfix(val=f"{point['val_accuracy']:.3f}", loss=f"{point['train_loss']:.3f}",
                        refresh=False)

    record(0)
    for step in range(c.steps):
        stepper.step(step)
        sched.step()
        if (step + 1) % c.eval_every == 0 or step + 1 == c.steps:
            record(step + 1)
        bar.update(1)
    bar.close()
    return curve


def _metrics(net: nn.Module, arch: Architecture, dataset: Dataset, data: DataConfig,
             c: FinetuneConfig, curve: list[dict], wall: float, features: dict,
             device: torch.device) -> dict:
    """`metrics.json`: the model's metrics (`rundirs.MODEL_METRICS`) and context."""
    space, final = arch.space, curve[-1]
    cost = count_cost(net, data.image_size)
    scope_blocks = space.trainable[:len(space.trainable) - len(space.spec.tail)]
    return {
        "format": 1, "kind": "vanilla" if c.vanilla else "two-stage",
        "init": None if c.vanilla else c.init, "base": space.base, "scope": space.scope,
        "architecture": arch.names, "finetune_steps": c.steps,
        "images_seen": c.steps * c.batch_size, "finetune_seconds": round(wall, 2),
        "val_accuracy": final["val_accuracy"], "test_accuracy": final["test_accuracy"],
        "curve": curve, "classes": dataset.classes, "dataset": dataset.name,
        "dataset_fingerprint": dataset.fingerprint(), "image_size": data.image_size,
        "preprocessing": {**space.spec.preprocessing.to_dict(),
                          "size": [data.image_size, data.image_size]},
        **cost.to_dict(), "scope_madds": cost.madds_under(scope_blocks),
        "trainable_parameters": sum(p.numel() for p in net.parameters() if p.requires_grad),
        "parameters": sum(p.numel() for p in net.parameters()),
        "device": str(device), "threads": torch.get_num_threads(),
        "features": features, "config": asdict(c),
    }


def _write(out: Path, net: nn.Module, arch: Architecture, metrics: dict) -> None:
    """The model directory: architecture, weights, metrics and the accuracy curve."""
    space, curve = arch.space, metrics["curve"]
    out.mkdir(parents=True, exist_ok=True)
    arch.save(out / rundirs.MODEL.architecture)
    save_safetensors(out / rundirs.MODEL.weights, net.state_dict(),
                     {"format": "archft-model-1", "base": space.base, "scope": space.scope})
    atomic_write_json(out / rundirs.MODEL.metrics, metrics)
    steps = [p["step"] for p in curve]
    curves = {"val": (steps, [p["val_accuracy"] for p in curve])}
    if curve[-1]["test_accuracy"] is not None:
        curves["test"] = (steps, [p["test_accuracy"] for p in curve])
    accuracy_curve(curves, out / rundirs.MODEL.accuracy_curve,
                   f"{space.base}/{space.scope} {metrics['kind']}")
