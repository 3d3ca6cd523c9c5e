"""Multiply-adds and parameters of a network, counted from the layers that actually run.

MAdds follow the convention of the published figures (torchvision's weights metadata `_ops`,
MobileNet and EfficientNet papers): one multiply-add per weight use in convolutions and fully
connected layers, nothing for BatchNorm, activations, pooling or residual additions. A conv
producing an (N, O, H, W) output with I input channels, g groups and a kh x kw kernel costs
O * H * W * (I / g) * kh * kw per image; a Linear, in * out.

Counted by forward hooks on the modules, so every implementation of a layer counts the same:
`torch.utils.flop_counter.FlopCounterMode` counts the aten ops instead, and on archft's
EfficientNet-Lite0 at 128 px it reports 397.5 M for the base and 167.4 M for the same function
built as a subnet, because a depthwise conv on a small CPU map runs as a batched matmul
(`archft.models.depthwise`) whose FLOPs are those of a dense banded matrix. Here both are the
conv's own count (tests/test_cost.py checks the base against its own-choices subnet, exactly).

Verified against torchvision's `_ops` at 224 px (tests/test_cost.py): ResNet-18 1.814 G,
ResNet-50 4.089 G, MobileNetV2 0.301 G, each within 0.5%, and the parameter counts exactly.

Parameters are those of the modules that ran (a supernet's inactive candidates do not count),
with the affine weight and bias of a `FrozenBatchNorm2d` (frozen parameters kept as buffers)
counted as the parameters they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d


@dataclass(frozen=True)
class Cost:
    """What one forward pass of a net costs, per image.

    Attributes:
        madds: multiply-adds.
        params: parameters of the modules that ran.
        by_module: multiply-adds of each conv/linear module that ran, by module path.
    """

    madds: int
    params: int
    by_module: dict[str, int] = field(default_factory=dict, repr=False)

    def madds_under(self, prefixes: Sequence[str]) -> int:
        """Multiply-adds of the modules at or under any of the module paths `prefixes`."""
        return sum(m for name, m in self.by_module.items()
                   if any(name == p or name.startswith(p + ".") for p in prefixes))

    def to_dict(self) -> dict:
        return {"madds": self.madds, "params": self.params}


def _layer_madds(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        per_out = (module.in_channels // module.groups) * kh * kw
        return output[0].numel() * per_out
    if isinstance(module, nn.Linear):
        rows = inputs[0].numel() // inputs[0].shape[-1] // len(inputs[0])
        return rows * module.in_features * module.out_features
    return 0


def _own_params(module: nn.Module) -> list[torch.Tensor]:
    own = list(module.parameters(recurse=False))
    if isinstance(module, FrozenBatchNorm2d):
        own += [module.weight, module.bias]
    return own


@torch.no_grad()
def count_cost(net: nn.Module, image_size: int | tuple[int, int] | None = None,
               example: torch.Tensor | None = None) -> Cost:
    """Multiply-adds and parameters per image of `net`'s forward (its active subnet, for a
    supernet).

    Args:
        net: any network; it is run once in eval mode on a zero batch of one, and left in the
            mode it was in.
        image_size: square side (or (H, W)) of the RGB input.
        example: an input batch to run instead (its first dimension is the batch).

    Returns:
        The cost of one image.
    """
    if example is None:
        if image_size is None:
            raise ValueError("count_cost needs an image_size or an example input")
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        device = next((p.device for p in net.parameters()), torch.device("cpu"))
        example = torch.zeros(1, 3, h, w, device=device)
    madds: dict[str, int] = {}
    params: dict[int, int] = {}

    def hook(name: str):
        def record(module, inputs, output) -> None:
            m = _layer_madds(module, inputs, output)
            if m:
                madds[name] = madds.get(name, 0) + m
            for p in _own_params(module):
                params[id(p)] = p.numel()
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in net.named_modules()]
    was_training = net.training
    try:
        net.eval()
        net(example)
    finally:
        for h in handles:
            h.remove()
        net.train(was_training)
    return Cost(sum(madds.values()), sum(params.values()), madds)
