"""MBConv (inverted residual) blocks and the EfficientNet-Lite0 definition.

Model definitions only: no I/O, no weight loading (that lives in `archft.models`). One block class
serves EfficientNet-Lite0, the MBConv search-space candidates and torchvision's MobileNetV2 blocks
(converted by `mbconv_from_torchvision`), so remapping code handles a single layout:
`expand` (1x1 conv-BN-ReLU6, Identity when the expansion is 1) -> `dw` (kxk depthwise conv-BN-
ReLU6) -> `project` (1x1 conv-BN), plus the identity shortcut when shapes allow.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from archft.models.depthwise import DepthwiseConv2d, conv2d_padded

# EfficientNet-Lite0 stages as (expansion, kernel, stride, out_channels, repeats): the B0 table
# with width = depth = 1.0; Lite drops squeeze-excitation and swaps Swish for ReLU6.
LITE0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
# The TF checkpoints were trained with BN epsilon 1e-3; using PyTorch's 1e-5 shifts every layer.
LITE0_BN_EPS = 1e-3


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding: asymmetric (more at the end) for strided convs.

    The Lite0 weights were trained with it; symmetric padding shifts every stride-2 feature map by
    half a pixel. A centre-remapped kxk kernel under SAME padding computes exactly what the 3x3
    kernel did, so function preservation holds here too.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        return conv2d_padded(self, x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


def conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1,
            act: bool = True, bn_eps: float = 1e-5, tf_same: bool = False) -> nn.Sequential:
    """conv -> BN (-> ReLU6) as a Sequential with named children `conv`, `bn`, `act`.

    Args:
        in_ch: input channels.
        out_ch: output channels.
        kernel: square kernel size (odd).
        stride: stride.
        groups: conv groups (= channels for depthwise).
        act: append ReLU6.
        bn_eps: BatchNorm epsilon.
        tf_same: TF "SAME" padding (only differs from k//2 for strided convs).

    Returns:
        The Sequential.
    """
    if tf_same and stride > 1:
        conv: nn.Conv2d = Conv2dSame(in_ch, out_ch, kernel, stride, 0, groups=groups, bias=False)
    else:
        cls = DepthwiseConv2d if groups == in_ch == out_ch > 1 else nn.Conv2d
        conv = cls(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False)
    layers = OrderedDict(conv=conv, bn=nn.BatchNorm2d(out_ch, eps=bn_eps))
    if act:
        layers["act"] = nn.ReLU6(inplace=True)
    return nn.Sequential(layers)


class MBConv(nn.Module):
    """Inverted residual block (MobileNetV2 / EfficientNet-Lite), without squeeze-excitation.

    Args:
        in_ch: input channels.
        out_ch: output channels.
        kernel: depthwise kernel size.
        stride: depthwise stride.
        expand_ratio: hidden channels = in_ch * expand_ratio; 1 means no expansion conv.
        bn_eps: BatchNorm epsilon.
        tf_same: TF "SAME" padding for the strided depthwise conv.
        hidden: explicit hidden width (torchvision rounds `in_ch * t`); defaults to the product.
    """

    def __init__(self, in_ch: int, out_ch: int, *, kernel: int, stride: int, expand_ratio: int,
                 bn_eps: float = 1e-5, tf_same: bool = False, hidden: int | None = None):
        super().__init__()
        hidden = hidden if hidden is not None else in_ch * expand_ratio
        self.in_ch, self.out_ch, self.hidden = in_ch, out_ch, hidden
        self.kernel, self.stride, self.expand_ratio = kernel, stride, expand_ratio
        self.bn_eps, self.tf_same = bn_eps, tf_same
        self.expand = (nn.Identity() if expand_ratio == 1
                       else conv_bn(in_ch, hidden, 1, bn_eps=bn_eps))
        self.dw = conv_bn(hidden, hidden, kernel, stride, groups=hidden, bn_eps=bn_eps,
                          tf_same=tf_same)
        self.project = conv_bn(hidden, out_ch, 1, act=False, bn_eps=bn_eps)
        # A structural constant fixed at construction, not a run-time architecture branch.
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.dw(self.expand(x)))
        return x + out if self.use_residual else out

    def extra_repr(self) -> str:
        return f"k{self.kernel}_e{self.expand_ratio}, stride={self.stride}"


def mbconv_from_torchvision(block: nn.Module) -> MBConv:
    """Converts a torchvision MobileNetV2 `InvertedResidual` into an equivalent `MBConv`.

    The conversion copies parameters and buffers, so the result computes the same function.

    Args:
        block: a `torchvision.models.mobilenetv2.InvertedResidual`.

    Returns:
        An `MBConv` with the same weights.
    """
    seq = list(block.conv)
    has_expand = len(seq) == 4
    dw_conv = seq[1][0] if has_expand else seq[0][0]
    project_conv, project_bn = seq[-2], seq[-1]
    in_ch = seq[0][0].in_channels if has_expand else dw_conv.in_channels
    hidden = dw_conv.in_channels
    out = MBConv(in_ch, project_conv.out_channels, kernel=dw_conv.kernel_size[0],
                 stride=dw_conv.stride[0], expand_ratio=round(hidden / in_ch) if has_expand else 1,
                 bn_eps=project_bn.eps, hidden=hidden)
    src = {"dw": seq[1] if has_expand else seq[0]}
    if has_expand:
        src["expand"] = seq[0]
    for name, mod in src.items():
        getattr(out, name).conv.load_state_dict(mod[0].state_dict())
        getattr(out, name).bn.load_state_dict(mod[1].state_dict())
    out.project.conv.load_state_dict(project_conv.state_dict())
    out.project.bn.load_state_dict(project_bn.state_dict())
    return out


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0: MBConv stages of `LITE0_STAGES`, ReLU6, no SE, fixed 32/1280 stem/head.

    Args:
        num_classes: classifier outputs.
        dropout: dropout before the classifier (0.2 as in the reference implementation).
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self.stem = conv_bn(3, 32, 3, 2, bn_eps=LITE0_BN_EPS, tf_same=True)
        blocks, in_ch = [], 32
        for expand, kernel, stride, out_ch, repeats in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(in_ch, out_ch, kernel=kernel, stride=stride if i == 0 else 1,
                                     expand_ratio=expand, bn_eps=LITE0_BN_EPS, tf_same=True))
                in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        self.head = conv_bn(in_ch, 1280, 1, bn_eps=LITE0_BN_EPS)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(self.dropout(torch.flatten(self.pool(x), 1)))
