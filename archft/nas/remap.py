"""Parameter remapping (seed 003, section 2.1): start a mutated network from pretrained weights.

- Kernel (eq. 2): a pretrained 3x3 kernel goes into the centre of a zero kxk kernel. With padding
  k//2 (or TF SAME) the larger conv computes exactly what the 3x3 one did, so a remapped network
  is function-preserving at initialisation. A smaller kernel takes the centre crop.
- Width: a smaller expansion keeps the hidden channels that matter most, by the L1 norm of the
  projection weights that read them; a larger one repeats existing channels and gives the new
  ones zero projection weights, which again preserves the function.
- Depth (eq. 1): new layer i of a stage copies layer f(i) = min(i, l) of the l pretrained ones.

`mode="random"` initialises kernels of a new size randomly instead (Kaiming normal, fan-out, as
torchvision initialises convs): the seed paper does not say how it initialised them, so this is
the ablation.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn

from archft.models.mbconv import Conv2dSame, MBConv
from archft.space import REMAP_MODES


def remap_kernel(weight: torch.Tensor, kernel: int) -> torch.Tensor:
    """Centre-pads (zeros) or centre-crops a conv weight (O, I, k0, k0) to kernel x kernel."""
    k0 = weight.shape[-1]
    if kernel == k0:
        return weight.clone()
    if kernel > k0:
        out = weight.new_zeros(*weight.shape[:2], kernel, kernel)
        o = (kernel - k0) // 2
        out[..., o:o + k0, o:o + k0] = weight
        return out
    o = (k0 - kernel) // 2
    return weight[..., o:o + kernel, o:o + kernel].clone()


def remap_conv(conv: nn.Conv2d, kernel: int, mode: str = "center",
               generator: torch.Generator | None = None) -> nn.Conv2d:
    """A copy of `conv` with a `kernel` x `kernel` kernel, initialised by `mode`.

    The padding rule is kept: k//2 for a plain conv, TF SAME for `Conv2dSame`.
    """
    if mode not in REMAP_MODES:
        raise ValueError(f"unknown remap mode {mode!r}; choose one of {REMAP_MODES}")
    cls = type(conv)
    padding = 0 if cls is Conv2dSame else kernel // 2
    new = cls(conv.in_channels, conv.out_channels, kernel, conv.stride, padding,
              conv.dilation, conv.groups, conv.bias is not None)
    with torch.no_grad():
        if mode == "random" and kernel != conv.kernel_size[0]:
            fan_out = conv.out_channels * kernel * kernel // conv.groups
            w = torch.randn(new.weight.shape, generator=generator) * (2.0 / fan_out) ** 0.5
            new.weight.copy_(w)
        else:
            new.weight.copy_(remap_kernel(conv.weight, kernel))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    new.weight.requires_grad_(conv.weight.requires_grad)
    return new


def hidden_channel_order(block: MBConv) -> torch.Tensor:
    """Hidden channels of `block`, most important first: L1 norm of the projection weights
    that read each channel (ties broken by index, so the order is deterministic)."""
    w = block.project.conv.weight.detach()  # (out, hidden, 1, 1)
    importance = w.abs().sum(dim=(0, 2, 3))
    return torch.argsort(-importance, stable=True)


def _take(t: torch.Tensor, idx: torch.Tensor, dim: int) -> torch.Tensor:
    return t.index_select(dim, idx).clone()


def remap_mbconv(block: MBConv, kernel: int, expand_ratio: int, mode: str = "center",
                 generator: torch.Generator | None = None) -> MBConv:
    """A copy of `block` with another depthwise kernel and expansion, remapped from its weights.

    Args:
        block: the pretrained block.
        kernel: new depthwise kernel size.
        expand_ratio: new expansion; must be 1 exactly when the block's is 1 (a block without an
            expansion conv has none to remap).
        mode: "center" or "random" (kernel init only; channel selection is the same).
        generator: RNG for `mode="random"`.

    Returns:
        A new `MBConv`.
    """
    if (expand_ratio == 1) != (block.expand_ratio == 1):
        raise ValueError("expansion 1 blocks can only stay expansion 1")
    new = MBConv(block.in_ch, block.out_ch, kernel=kernel, stride=block.stride,
                 expand_ratio=expand_ratio, bn_eps=block.bn_eps, tf_same=block.tf_same)
    h0, h1 = block.hidden, new.hidden
    if h1 <= h0:
        idx = torch.sort(hidden_channel_order(block)[:h1]).values
        extra = 0
    else:  # wider: repeat channels cyclically; zero projection weights keep the function
        idx = torch.arange(h1) % h0
        extra = h1 - h0
    with torch.no_grad():
        if expand_ratio != 1:
            new.expand.conv.weight.copy_(_take(block.expand.conv.weight, idx, 0))
            _copy_bn(block.expand.bn, new.expand.bn, idx)
        dw = remap_conv(block.dw.conv, kernel, mode, generator)
        new.dw.conv.weight.copy_(_take(dw.weight, idx, 0))
        _copy_bn(block.dw.bn, new.dw.bn, idx)
        proj = _take(block.project.conv.weight, idx, 1)
        if extra:
            proj[:, h0:] = 0
        new.project.conv.weight.copy_(proj)
        new.project.bn.load_state_dict(block.project.bn.state_dict())
    return new


def _copy_bn(src: nn.BatchNorm2d, dst: nn.BatchNorm2d, idx: torch.Tensor) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst, name).copy_(_take(getattr(src, name), idx, 0))
    dst.num_batches_tracked.copy_(src.num_batches_tracked)


def remap_depth(layers: Sequence[nn.Module], depth: int) -> list[nn.Module]:
    """Seed 003 eq. 1: `depth` layers where layer i copies pretrained layer min(i, l).

    Args:
        layers: the l pretrained layers of a stage, in order; all after the first must keep the
            shape (stride 1, in = out) for the copies to be stackable.
        depth: the new number of layers (may be smaller than l, which keeps the first ones).

    Returns:
        Deep copies: `depth` modules.
    """
    if depth < 1 or not layers:
        raise ValueError("a stage needs at least one layer")
    last = len(layers) - 1
    return [copy.deepcopy(layers[min(i, last)]) for i in range(depth)]
