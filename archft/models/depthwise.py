"""Depthwise convolution whose training step is fast on the small feature maps of a scope.

Measured (2026-12-03, this project's 2-core x86_64 CPU, torch 2.14.1, 1 thread, batch 64,
forward + backward): PyTorch's CPU depthwise conv spends almost all its time in the backward
pass on small maps: 1152 channels on 4x4 maps take 173 ms with a 5x5 kernel and 289 ms with a
7x7 one, against 29 ms for the 1x1 expansion conv of the same block. That made the depthwise
convs about two thirds of a scope training step (EfficientNet-Lite0 medium scope, 128 px).

On an HxW map a depthwise conv is, per channel, a fixed linear map from the H*W inputs to the
Ho*Wo outputs: a banded (Ho*Wo, H*W) matrix whose entries are kernel taps. Built from the
kernel by a product with a fixed 0/1 matrix (its backward is a matmul too: 4x faster than a
gather's), it turns the conv into one batched matmul over channels, which the CPU does in
16 ms in both cases above (5-18x less). The result equals the conv up to float rounding
(about 4e-6 on unit-variance inputs; tests/test_depthwise.py compares both).

Used only where it pays, on the CPU: with gradients, for maps whose matrix has at most
`BANDED_MAX_ENTRIES` entries per channel (8x8 at stride 1: 2.4x faster); without gradients
(evaluation, rewards) only up to `BANDED_FORWARD_MAX_ENTRIES` (forward alone, 1152 channels:
7 vs 25 ms on 4x4 maps with a 5x5 kernel, 11 vs 16 ms for 8x8 -> 4x4, but 37 vs 26 ms on 8x8
maps at stride 1). Larger maps and ONNX export run the ordinary conv.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

# Largest (Ho*Wo) x (H*W) matrix per channel built instead of running the conv: 8x8 -> 8x8
# when gradients are needed, 8x8 -> 4x4 for a forward pass alone.
BANDED_MAX_ENTRIES = 64 * 64
BANDED_FORWARD_MAX_ENTRIES = 16 * 64


@lru_cache(maxsize=64)
def tap_index(h: int, w: int, kernel: int, stride: int, pad: tuple[int, int, int, int]
              ) -> torch.Tensor:
    """(Ho*Wo, H*W) indices: 1 + the kernel tap that joins output o to input i, 0 where none.

    Computed by running the conv itself (float64, exact small integers) on one-hot images, so
    it follows the same padding and stride rules as `F.conv2d` on `F.pad(x, pad)`.
    """
    taps = torch.arange(1, kernel * kernel + 1, dtype=torch.float64).view(1, 1, kernel, kernel)
    eye = torch.eye(h * w, dtype=torch.float64).view(h * w, 1, h, w)
    out = F.conv2d(F.pad(eye, pad), taps, stride=stride)  # (H*W, 1, Ho, Wo)
    return out.reshape(h * w, -1).t().round().long().contiguous()


@lru_cache(maxsize=64)
def _spread(h: int, w: int, kernel: int, stride: int, pad: tuple[int, int, int, int]
            ) -> torch.Tensor:
    """(k*k, Ho*Wo*H*W) float 0/1: kernel (C, k*k) @ spread = the banded matrices, flattened."""
    idx = tap_index(h, w, kernel, stride, pad)
    onehot = torch.nn.functional.one_hot(idx.flatten(), kernel * kernel + 1)[:, 1:]
    return onehot.t().float().contiguous()


def _banded(x: torch.Tensor, weight: torch.Tensor, stride: int,
            pad: tuple[int, int, int, int]) -> torch.Tensor:
    b, c, h, w = x.shape
    k = weight.shape[-1]
    ho = (h + pad[2] + pad[3] - k) // stride + 1
    wo = (w + pad[0] + pad[1] - k) // stride + 1
    spread = _spread(h, w, k, stride, pad).to(weight.dtype)
    band = (weight.reshape(c, k * k) @ spread).view(c, ho * wo, h * w)  # (C, O, I)
    y = torch.bmm(x.reshape(b, c, h * w).transpose(0, 1), band.transpose(1, 2))  # (C, B, O)
    return y.transpose(0, 1).reshape(b, c, ho, wo)


def use_banded(conv: nn.Conv2d, x: torch.Tensor) -> bool:
    """Whether `depthwise_conv2d` takes the banded-matrix path for this conv and input."""
    c = conv.in_channels
    if not (x.device.type == "cpu" and conv.groups == c == conv.out_channels
            and conv.bias is None and conv.dilation == (1, 1)
            and conv.stride[0] == conv.stride[1] and conv.kernel_size[0] == conv.kernel_size[1]
            and not torch.jit.is_tracing() and not torch.jit.is_scripting()
            and not torch.onnx.is_in_onnx_export()):
        return False
    entries = (x.shape[-2] * x.shape[-1]) ** 2 // conv.stride[0] ** 2
    grad = torch.is_grad_enabled() and (conv.weight.requires_grad or x.requires_grad)
    return entries <= (BANDED_MAX_ENTRIES if grad else BANDED_FORWARD_MAX_ENTRIES)


def conv2d_padded(conv: nn.Conv2d, x: torch.Tensor, pad: tuple[int, int, int, int]
                  ) -> torch.Tensor:
    """`conv` on `x` zero-padded by (left, right, top, bottom), its own padding ignored;
    depthwise convs on small CPU maps in training take the banded-matrix path."""
    if use_banded(conv, x):
        return _banded(x, conv.weight, conv.stride[0], pad)
    if any(pad):
        x = F.pad(x, list(pad))
    return F.conv2d(x, conv.weight, conv.bias, conv.stride, 0, conv.dilation, conv.groups)


class DepthwiseConv2d(nn.Conv2d):
    """A depthwise `nn.Conv2d` (symmetric padding) computed by `conv2d_padded`: the same
    parameters, state dict and function, a faster training step on small CPU maps."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ph, pw = self.padding
        return conv2d_padded(self, x, (pw, pw, ph, ph))
