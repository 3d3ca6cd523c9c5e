"""The weight-sharing supernet: one parameter set per candidate op (ENAS), frozen outside scope.

Each decision of the space becomes a `ChoiceLayer` holding every candidate; the active one is set
for the whole net by `Supernet.set_architecture` and is the only state that changes between
sampled subnets, so a training step on a subnet updates exactly the shared weights it used.
ResNet candidates are conv+BN pairs: each kernel size keeps its own BatchNorm statistics, since a
5x5 kernel's outputs do not share the 3x3 kernel's distribution once trained.

Outside the scope parameters get `requires_grad=False` and BatchNorm layers become
`FrozenBatchNorm2d` (running statistics as buffers, no train mode), so `net.train()` cannot
change them. `materialize` returns a plain module with only the chosen ops: a ResNet comes back
as a torchvision ResNet whose mutated convs are 5x5, an MBConv net with `MBConv` blocks.
"""

from __future__ import annotations

import copy
import zlib
from collections import OrderedDict
from typing import Iterator, Sequence

import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from archft.models import build_base, get_submodule_parent
from archft.models.mbconv import MBConv, mbconv_from_torchvision
from archft.nas.remap import remap_conv, remap_mbconv
from archft.space import SKIP, Decision, SearchSpace, parse_candidate, previous_position


def _under(name: str, prefixes: Sequence[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def freeze_outside(net: nn.Module, trainable: Sequence[str]) -> nn.Module:
    """Freezes every module not under a `trainable` path, in place.

    Frozen parameters get `requires_grad=False`; frozen BatchNorm2d layers are replaced by
    `FrozenBatchNorm2d` with the same statistics, so they stay in inference behaviour whatever
    `train()` says.

    Args:
        net: the network.
        trainable: module paths (and their children) left trainable.

    Returns:
        `net`.
    """
    for name, p in net.named_parameters():
        if not _under(name, trainable):
            p.requires_grad_(False)
    for name, mod in list(net.named_modules()):
        if isinstance(mod, nn.BatchNorm2d) and not _under(name, trainable):
            frozen = FrozenBatchNorm2d(mod.num_features, eps=mod.eps)
            for buf in ("weight", "bias", "running_mean", "running_var"):
                getattr(frozen, buf).copy_(getattr(mod, buf).detach())
            parent, attr = get_submodule_parent(net, name)
            setattr(parent, attr, frozen)
    return net


class ChoiceLayer(nn.Module):
    """Holds the candidates of one decision and runs the active one.

    With `mixture` set (DARTS, seed 003 eq. 3) it returns the softmax-weighted sum of all
    candidates instead.

    Args:
        candidates: one module per candidate op, each with its own parameters.
    """

    def __init__(self, candidates: Sequence[nn.Module]):
        super().__init__()
        self.candidates = nn.ModuleList(candidates)
        self.active = 0
        self.mixture: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mixture is None:
            return self.candidates[self.active](x)
        w = self.mixture
        return sum(w[i] * c(x) for i, c in enumerate(self.candidates))

    def extra_repr(self) -> str:
        return f"active={self.active}"


def _candidate(net: nn.Module, decision: Decision, index: int, mode: str) -> nn.Module:
    """Builds candidate `index` of `decision` from the pretrained op in `net`.

    "skip" is nn.Identity. A new block position (depth, `decision.source`) copies the stage's
    last pretrained block (seed 003 eq. 1), remapped to the candidate, and starts as the
    identity: its projection's BatchNorm scale and shift are zeroed, so the residual block
    outputs its input (function-preserving, as the kernel remapping is) and learns from there
    (the scale's gradient is not zero).
    """
    name = decision.candidates[index]
    if name == SKIP:
        return nn.Identity()
    kernel, expand = parse_candidate(name)
    # Per-candidate generator: the "random" ablation is reproducible whatever else ran before.
    # (crc32, not hash(): str hashes are salted per process.)
    g = torch.Generator().manual_seed(zlib.crc32(f"{decision.layer}:{index}".encode()))
    if decision.norm is not None:
        conv = net.get_submodule(decision.layer)
        bn = net.get_submodule(decision.norm)
        return nn.Sequential(OrderedDict(conv=remap_conv(conv, kernel, mode, g),
                                         bn=copy.deepcopy(bn)))
    block = net.get_submodule(decision.source or decision.layer)
    block = block if isinstance(block, MBConv) else mbconv_from_torchvision(block)
    new = remap_mbconv(block, kernel, expand, mode, g)
    if decision.source is not None:
        with torch.no_grad():
            new.project.bn.weight.zero_()
            new.project.bn.bias.zero_()
    return new


def insert_after(parent: nn.Module, after: str, name: str, module: nn.Module) -> None:
    """Adds child `name` to `parent` (a Sequential) right after its child `after`, so that the
    parent's forward runs it there."""
    children = list(parent._modules.items())
    at = [k for k, _ in children].index(after) + 1
    parent._modules.clear()
    for key, child in children[:at] + [(name, module)] + children[at:]:
        parent._modules[key] = child


def _new_positions(net: nn.Module, space: SearchSpace) -> None:
    """Inserts a placeholder at each new block position of `space` (depth decisions)."""
    for d in space.new_layers:
        parent, attr = get_submodule_parent(net, d.layer)
        insert_after(parent, previous_position(d.layer).rpartition(".")[2], attr, nn.Identity())


def _install(net: nn.Module, decision: Decision, module: nn.Module) -> None:
    """Puts a ChoiceLayer or one chosen candidate at the decision's place in `net`."""
    parent, attr = get_submodule_parent(net, decision.layer)
    if decision.norm is None:
        setattr(parent, attr, module)
        return
    norm_parent, norm_attr = get_submodule_parent(net, decision.norm)
    if isinstance(module, ChoiceLayer):  # the candidate carries its own BN
        setattr(parent, attr, module)
        setattr(norm_parent, norm_attr, nn.Identity())
    else:  # a chosen conv+BN pair goes back where the base had them
        setattr(parent, attr, module.conv)
        setattr(norm_parent, norm_attr, module.bn)


def build_scoped_base(space: SearchSpace) -> nn.Module:
    """The unmodified base with its weights and head, frozen outside the scope (the vanilla
    last-k fine-tuning model)."""
    return freeze_outside(build_base(space.base, space.weights, space.num_classes),
                          space.trainable)


def build_supernet(space: SearchSpace) -> "Supernet":
    """The weight-sharing supernet of `space`, remapped from the base."""
    return Supernet(space)


def build_subnet(space: SearchSpace, arch: Sequence[int]) -> nn.Module:
    """One architecture of `space` as a plain module remapped from the base, frozen outside
    the scope; the same structure as `Supernet.materialize` gives."""
    arch = space.validate(arch)
    net = build_base(space.base, space.weights, space.num_classes)
    _new_positions(net, space)
    # Every candidate is built from the pretrained net before any is installed: a new block
    # position copies a block that has a decision of its own.
    chosen = [_candidate(net, d, a, space.remap) for d, a in zip(space.decisions, arch)]
    for d, module in zip(space.decisions, chosen):
        _install(net, d, module)
    return freeze_outside(net, space.trainable).eval()


class Supernet(nn.Module):
    """Weight-sharing supernet over a `SearchSpace`.

    Args:
        space: the search space; its base weights are loaded and remapped into every candidate.
    """

    def __init__(self, space: SearchSpace):
        super().__init__()
        self.space = space
        net = build_base(space.base, space.weights, space.num_classes)
        _new_positions(net, space)
        layers = [ChoiceLayer([_candidate(net, d, i, space.remap)
                               for i in range(len(d.candidates))]) for d in space.decisions]
        for d, layer in zip(space.decisions, layers):
            _install(net, d, layer)
        self.net = freeze_outside(net, space.trainable)
        self.choices: tuple[ChoiceLayer, ...] = tuple(
            net.get_submodule(d.layer) for d in space.decisions)
        first = space.base_architecture or [0] * space.num_decisions
        self.architecture: list[int] = []
        self.set_architecture(first)
        self.eval()

    def set_architecture(self, arch: Sequence[int]) -> None:
        """Activates one candidate per decision (indices into each decision's candidates)."""
        arch = self.space.validate(arch)
        for layer, a in zip(self.choices, arch):
            layer.active = a
        self.architecture = arch

    def set_mixture(self, weights: Sequence[torch.Tensor] | None) -> None:
        """DARTS: run every candidate, weighted by `weights[t]` at decision t; None restores
        single-path execution of the active architecture."""
        for t, layer in enumerate(self.choices):
            layer.mixture = None if weights is None else weights[t]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters inside the scope (every candidate's) and of the tail."""
        return (p for p in self.parameters() if p.requires_grad)

    def materialize(self, arch: Sequence[int] | None = None) -> nn.Module:
        """A standalone copy of the subnet `arch` (default: the active one), holding only the
        chosen ops with the supernet's current weights.

        Args:
            arch: candidate indices, one per decision.

        Returns:
            A plain nn.Module in eval mode with the supernet's freezing.
        """
        arch = self.space.validate(self.architecture if arch is None else arch)
        # Unchosen candidates are mapped to a placeholder in the deepcopy memo, so they are
        # never copied: materialising a 6-candidate MBConv space copies 1x, not 6x, the scope.
        memo = {id(c): nn.Identity() for layer, a in zip(self.choices, arch)
                for i, c in enumerate(layer.candidates) if i != a}
        net = copy.deepcopy(self.net, memo)
        for d, a in zip(self.space.decisions, arch):
            _install(net, d, net.get_submodule(d.layer).candidates[a])
        return net.eval()


def unwrap(net: nn.Module) -> nn.Module:
    """The network a base's forward steps address: a supernet's inner net, else `net`."""
    return net.net if isinstance(net, Supernet) else net
