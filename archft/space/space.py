"""Search spaces: a base, a scope and a mutation rule, all as small tables.

Mutation rule (seed 000, section 3.1): inside the scope every 3x3 conv of a ResNet block may take
any kernel of `kernels` (default 3 or 5); every inverted-residual block of an MBConv net may take
any (kernel, expansion) of `kernels` x `expansions` (default {3, 5, 7} x {3, 6}; seed 003, 2.2).
Scope: the last 1 / 2 / 3 / all stages. Everything before the scope stays frozen.

Depth (seed 003, 2.1; FNA's `skip` candidate), MBConv bases only, off by default: with
`depth = (-m, ..., 0, ..., +n)` each scoped stage's last m blocks (never its first) also get a
"skip" candidate (nn.Identity: the stage loses that block), and n new block positions follow
the stage's last block, each with "skip" (the base's choice) and every kernel x expansion
candidate. A new block copies the stage's last pretrained block (eq. 1, f(i) = min(i, l)),
remapped to its candidate, and starts as the identity (its projection's BatchNorm scale and
shift are zero, so the residual block adds nothing until they are trained): function-preserving
like the kernel remapping (`archft.nas.supernet`). New positions need a stage whose last block
keeps its shape (stride 1, in = out), so a one-block stage (Lite0's last) gets none. A new
position is a module inserted into the stage's Sequential after its last block, named
"<last>+<j>" (blocks.14+1), and the space's `spec` runs it in its forward steps.

    ResNet-18  small / medium / large / full:  4 / 8 / 12 / 16 decisions  (Table 1: 2^4 ... 2^16)
    ResNet-50                                  3 / 9 / 13 / 16 decisions  (one 3x3 per bottleneck)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Sequence

from torch import nn

from archft.core.config import from_plain
from archft.core.errors import ConfigError
from archft.models import BaseSpec, get_base
from archft.models.mbconv import MBConv, mbconv_from_torchvision

SCOPES = ("small", "medium", "large", "full")
# Trailing stages in each scope; None = all stages.
SCOPE_STAGES = {"small": 1, "medium": 2, "large": 3, "full": None}
# ResNet mutation rule: block class -> (mutable 3x3 conv, the BatchNorm that follows it).
RESNET_MUTABLE = {
    "BasicBlock": (("conv1", "bn1"), ("conv2", "bn2")),
    "Bottleneck": (("conv2", "bn2"),),
}
DEFAULT_KERNELS = {"resnet": (3, 5), "mbconv": (3, 5, 7)}
DEFAULT_EXPANSIONS = (3, 6)
# How a new kernel size is initialised from the pretrained one (`archft.nas.remap`): "center"
# (function-preserving) or "random" (the ablation).
REMAP_MODES = ("center", "random")
# The fields that define a space (besides its class count): a run configuration's `space`.
SPACE_FIELDS = ("base", "weights", "scope", "kernels", "expansions", "remap", "depth")
# The candidate that removes a block (depth decisions): the layer becomes nn.Identity.
SKIP = "skip"


def candidate_name(kernel: int, expand_ratio: int | None = None) -> str:
    """"k5" for a conv, "k5_e6" for an MBConv block."""
    return f"k{kernel}" if expand_ratio is None else f"k{kernel}_e{expand_ratio}"


def parse_candidate(name: str) -> tuple[int, int | None]:
    """Inverse of `candidate_name`: "k5_e6" -> (5, 6), "k5" -> (5, None). ("skip" has no
    kernel: callers check for `SKIP` first.)"""
    parts = name.split("_")
    kernel = int(parts[0][1:])
    return kernel, (int(parts[1][1:]) if len(parts) > 1 else None)


@dataclass(frozen=True)
class Decision:
    """One mutable layer.

    Attributes:
        layer: module path of the mutable unit ("layer4.1.conv2" or "blocks.15").
        candidates: candidate op names, see `candidate_name`.
        norm: ResNet only: module path of the BatchNorm after the conv. Each candidate gets its
            own copy (separate statistics per kernel size), merged into the candidate.
        base: index of the candidate identical to the pretrained op, or None if no candidate is.
        source: a new block position (depth decision): the pretrained block it copies (eq. 1);
            None for a layer of the base.
    """

    layer: str
    candidates: tuple[str, ...]
    norm: str | None = None
    base: int | None = None
    source: str | None = None


def scope_stages(spec: BaseSpec, scope: str) -> tuple[tuple[str, ...], ...]:
    """The stages (block paths, input to output) a scope covers: the last 1 / 2 / 3 / all."""
    return spec.stages[-(SCOPE_STAGES[scope] or len(spec.stages)):]


def _check_sizes(values: Sequence[int], what: str, odd: bool) -> tuple[int, ...]:
    values = tuple(values)
    bad = [v for v in values if not isinstance(v, int) or v < 1 or (odd and v % 2 == 0)]
    if not values or bad or len(set(values)) != len(values):
        rule = "distinct odd integers such as 3,5,7" if odd else "distinct positive integers"
        raise ConfigError(f"{what} must be {rule}, got {','.join(map(str, values)) or 'nothing'}")
    return values


@dataclass(frozen=True)
class SearchSpace:
    """A scoped search space over a pretrained base. Build with `SearchSpace.from_base`.

    Attributes:
        base: registered base name.
        scope: one of `SCOPES`.
        kernels: candidate kernel sizes.
        expansions: candidate expansions (MBConv bases), else None.
        weights: where the pretrained weights come from ("imagenet", "none" or a path).
        num_classes: classifier outputs.
        remap: initialisation of new kernels, "center" (function-preserving) or "random".
        decisions: the mutable layers, input to output.
        trainable: module paths fine-tuned (scope blocks, new block positions and the base's
            tail); all else frozen.
        depth: the depth offsets a scoped stage may take, e.g. (-1, 0, 1); (0,): no depth
            decisions (see the module docstring).
    """

    base: str
    scope: str
    kernels: tuple[int, ...]
    expansions: tuple[int, ...] | None
    weights: str
    num_classes: int
    remap: str
    decisions: tuple[Decision, ...] = field(repr=False)
    trainable: tuple[str, ...] = field(repr=False)
    depth: tuple[int, ...] = (0,)

    @classmethod
    def from_base(cls, base: str, scope: str = "small", kernels: Sequence[int] | None = None,
                  expansions: Sequence[int] | None = None, weights: str = "imagenet",
                  num_classes: int = 10, remap: str = "center",
                  depth: Sequence[int] | None = None) -> "SearchSpace":
        """Applies the mutation rule to the scoped blocks of `base`.

        Args:
            base: registered base name.
            scope: "small", "medium", "large" or "full".
            kernels: candidate kernels (odd); default (3, 5) for ResNets, (3, 5, 7) for MBConv.
            expansions: MBConv candidate expansions, default (3, 6); must be None for ResNets.
            weights: "imagenet", "none" or a state-dict path (see `archft.models.build_base`).
            num_classes: classifier outputs.
            remap: "center" or "random".
            depth: depth offsets per scoped stage, a run of integers holding 0 such as
                (-1, 0, 1) (MBConv bases; None or (0,): none).

        Returns:
            The space.

        Raises:
            ConfigError: unknown base, scope or remap mode, or bad kernels/expansions/depth.
        """
        spec = get_base(base)
        if scope not in SCOPE_STAGES:
            raise ConfigError(f"unknown scope {scope!r}; choose one of {', '.join(SCOPES)}")
        if remap not in REMAP_MODES:
            raise ConfigError(f"unknown remap {remap!r}; choose one of {', '.join(REMAP_MODES)}")
        kernels = _check_sizes(kernels or DEFAULT_KERNELS[spec.family], "kernels", odd=True)
        if spec.family == "resnet":
            if expansions:
                raise ConfigError(f"{base} has no expansion ratios to search; drop --expansions")
            expansions = None
        else:
            expansions = _check_sizes(expansions or DEFAULT_EXPANSIONS, "expansions", odd=False)
        depth = _check_depth(depth, base, spec.family)
        stages = scope_stages(spec, scope)
        blocks = tuple(b for stage in stages for b in stage)
        skeleton = spec.construct()
        if spec.family == "resnet":
            decisions = tuple(d for b in blocks
                              for d in _resnet_decisions(skeleton, b, kernels, expansions))
        else:
            decisions = tuple(d for stage in stages for d in _mbconv_stage(
                skeleton, stage, kernels, expansions, depth))
        new = tuple(d.layer for d in decisions if d.source)
        return cls(base, scope, kernels, expansions, str(weights), num_classes, remap, decisions,
                   blocks + new + spec.tail, depth)

    # -- properties -----------------------------------------------------------------------------

    @cached_property
    def spec(self) -> BaseSpec:
        """The base's spec, its forward steps running the new block positions (if any)."""
        spec = get_base(self.base)
        new = [d.layer for d in self.decisions if d.source]
        if not new:
            return spec
        steps = list(spec.steps)
        for layer in new:
            steps.insert(steps.index(previous_position(layer)) + 1, layer)
        return dataclasses.replace(spec, steps=tuple(steps))

    @property
    def new_layers(self) -> tuple[Decision, ...]:
        """The decisions of new block positions (depth), input to output."""
        return tuple(d for d in self.decisions if d.source)

    @property
    def num_decisions(self) -> int:
        return len(self.decisions)

    @cached_property
    def num_subnets(self) -> int:
        return math.prod(len(d.candidates) for d in self.decisions)

    @property
    def base_architecture(self) -> list[int] | None:
        """Candidate indices reproducing the unmodified base, or None if it is not in the space."""
        if any(d.base is None for d in self.decisions):
            return None
        return [d.base for d in self.decisions]

    def validate(self, arch: Sequence[int]) -> list[int]:
        """Checks one candidate index per decision and returns them as a list of ints.

        Raises:
            ValueError: wrong length or an index out of range.
        """
        arch = [int(a) for a in arch]
        if len(arch) != self.num_decisions:
            raise ValueError(f"architecture has {len(arch)} choices, the space has "
                             f"{self.num_decisions} decisions")
        for a, d in zip(arch, self.decisions):
            if not 0 <= a < len(d.candidates):
                raise ValueError(f"choice {a} out of range for {d.layer} "
                                 f"({len(d.candidates)} candidates)")
        return arch

    def describe(self, arch: Sequence[int]) -> list[str]:
        """Candidate names of an architecture."""
        return [d.candidates[a] for a, d in zip(self.validate(arch), self.decisions)]

    def inert_kernels(self, image_size: int) -> list[dict]:
        """Decisions whose kernel candidates cannot differ at this input size.

        A kxk conv (padding k//2) on an HxW map only ever reaches real pixels within
        max(H, W) - 1 of its centre, so it acts as a min(k, 2 max(H, W) - 1) kernel: the rest
        multiplies padding and gets no gradient. At 32 px, EfficientNet-Lite0's last stage runs
        on 1x1 maps, where 3x3, 5x5 and 7x7 are the same function.

        Args:
            image_size: model input side.

        Returns:
            One entry per affected decision: layer, input size and groups of equivalent
            candidates (groups of one are left out).
        """
        import torch

        sizes: dict[str, tuple[int, int]] = {}

        def recorder(name: str):
            def hook(module, inputs, output) -> None:
                sizes[name] = tuple(inputs[0].shape[-2:])
            return hook

        skeleton = self.spec.construct().eval()
        # A new block position reads what the stage's last block (stride 1) reads.
        hooks = [skeleton.get_submodule(d.source or d.layer).register_forward_hook(
            recorder(d.layer)) for d in self.decisions]
        with torch.no_grad():
            skeleton(torch.zeros(1, 3, image_size, image_size))
        for h in hooks:
            h.remove()
        out = []
        for d in self.decisions:
            reach = 2 * max(sizes[d.layer]) - 1
            groups: dict[tuple, list[str]] = {}
            for c in d.candidates:
                if c == SKIP:
                    continue
                k, e = parse_candidate(c)
                groups.setdefault((min(k, reach), e), []).append(c)
            same = [g for g in groups.values() if len(g) > 1]
            if same:
                out.append({"layer": d.layer, "input": list(sizes[d.layer]), "equivalent": same})
        return out

    def to_dict(self) -> dict:
        """The fields that define the space (`from_dict` rebuilds it): base, scope, kernels,
        expansions, num_classes, weights, remap, depth. `architecture.json` and the pipeline's
        `space.json` hold exactly these."""
        return {"base": self.base, "scope": self.scope, "kernels": list(self.kernels),
                "expansions": list(self.expansions) if self.expansions else None,
                "num_classes": self.num_classes, "weights": self.weights, "remap": self.remap,
                "depth": list(self.depth)}

    @classmethod
    def from_dict(cls, data: dict) -> "SearchSpace":
        """Rebuilds a space from `to_dict`'s fields (other keys are ignored).

        Raises:
            ConfigError: a field is missing or the space cannot be built from it.
        """
        missing = [k for k in ("base", "scope", "kernels", "num_classes") if k not in data]
        if missing:
            raise ConfigError(f"space description lacks {missing[0]!r}")
        return cls.from_base(data["base"], data["scope"], data["kernels"],
                             data.get("expansions"), weights=data.get("weights", "imagenet"),
                             num_classes=data["num_classes"], remap=data.get("remap", "center"),
                             depth=data.get("depth"))

    def summary(self) -> dict:
        """A JSON-ready description (`to_dict` and what follows from it), as printed by
        `archft space --json`."""
        return {
            **self.to_dict(),
            "num_decisions": self.num_decisions, "num_subnets": self.num_subnets,
            "log2_subnets": round(math.log2(self.num_subnets), 3),
            "decisions": [{"layer": d.layer, "candidates": list(d.candidates),
                           "base": d.candidates[d.base] if d.base is not None else None,
                           **({"source": d.source} if d.source else {})}
                          for d in self.decisions],
            "trainable": list(self.trainable),
            "preprocessing": self.spec.preprocessing.to_dict(),
        }


@dataclass(frozen=True)
class SpaceConfig:
    """A space as a run configuration gives it (`parameters.space`); the class count comes
    from the data.

    Attributes:
        base: registered base name.
        weights: "imagenet", "none" or a state-dict path.
        scope: "small", "medium", "large" or "full".
        kernels: candidate kernels (None: the family's default).
        expansions: MBConv candidate expansions (None: the default for MBConv bases).
        remap: "center" or "random".
        depth: depth offsets per scoped stage, e.g. [-1, 0, 1] (None: no depth decisions).
    """

    base: str = "efficientnet_lite0"
    weights: str = "imagenet"
    scope: str = "small"
    kernels: tuple[int, ...] | None = None
    expansions: tuple[int, ...] | None = None
    remap: str = "center"
    depth: tuple[int, ...] | None = None

    def __post_init__(self):
        for name in ("kernels", "expansions", "depth"):  # YAML gives lists
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))

    def build(self, num_classes: int = 10) -> SearchSpace:
        """The space over `num_classes` classes (checks every field)."""
        return SearchSpace.from_base(self.base, self.scope, self.kernels, self.expansions,
                                     weights=self.weights, num_classes=num_classes,
                                     remap=self.remap, depth=self.depth)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "SpaceConfig":
        """Builds a config from plain data (YAML/JSON), refusing unknown fields; the space it
        describes is built once to check it."""
        config = from_plain(cls, data, "space")
        config.build()
        return config


def _resnet_decisions(skeleton: nn.Module, block: str, kernels, _expansions):
    mod = skeleton.get_submodule(block)
    for conv, norm in RESNET_MUTABLE[type(mod).__name__]:
        k0 = getattr(mod, conv).kernel_size[0]
        assert k0 == 3, f"mutation rule expects a 3x3 conv at {block}.{conv}"
        yield Decision(f"{block}.{conv}", tuple(candidate_name(k) for k in kernels),
                       f"{block}.{norm}", kernels.index(k0) if k0 in kernels else None)


def previous_position(layer: str) -> str:
    """The block a new position follows: "blocks.14+1" -> "blocks.14", "+2" -> "+1"."""
    source, _, j = layer.rpartition("+")
    return source if j == "1" else f"{source}+{int(j) - 1}"


def _check_depth(depth: Sequence[int] | None, base: str, family: str) -> tuple[int, ...]:
    depth = tuple(depth) if depth else (0,)
    ok = (all(isinstance(d, int) and not isinstance(d, bool) for d in depth)
          and depth == tuple(range(min(depth), max(depth) + 1)) and 0 in depth)
    if not ok:
        raise ConfigError(f"depth must be a run of integers holding 0 such as -1,0,1, got "
                          f"{','.join(map(str, depth))}")
    if family == "resnet" and depth != (0,):
        raise ConfigError(f"depth decisions are for MBConv bases; {base} is a ResNet")
    return depth


def _as_mbconv(skeleton: nn.Module, block: str) -> MBConv:
    mod = skeleton.get_submodule(block)
    return mod if isinstance(mod, MBConv) else mbconv_from_torchvision(mod)


def _grid(mod: MBConv, kernels, expansions) -> tuple[str, ...]:
    # A block without an expansion conv (expansion 1) has nothing to remap a width from.
    exps = (1,) if mod.expand_ratio == 1 else expansions
    return tuple(candidate_name(k, e) for k in kernels for e in exps)


def _mbconv_stage(skeleton: nn.Module, stage: Sequence[str], kernels, expansions,
                  depth: tuple[int, ...]):
    """A stage's decisions: one per block (the last -min(depth) after the first may skip),
    then max(depth) new positions after its last block where that keeps its shape."""
    fewer, more = -min(depth), max(depth)
    for i, block in enumerate(stage):
        mod = _as_mbconv(skeleton, block)
        cands = _grid(mod, kernels, expansions)
        if i > 0 and i >= len(stage) - fewer:
            cands += (SKIP,)
        own = candidate_name(mod.kernel, mod.expand_ratio)
        yield Decision(block, cands, None, cands.index(own) if own in cands else None)
    last = _as_mbconv(skeleton, stage[-1])
    if more and last.use_residual:
        cands = (SKIP,) + _grid(last, kernels, expansions)
        for j in range(1, more + 1):
            yield Decision(f"{stage[-1]}+{j}", cands, None, 0, source=stage[-1])
