"""The banded-matrix depthwise conv (archft.models.depthwise) against PyTorch's own conv."""

import pytest
import torch
import torch.nn.functional as F

from archft.models import Conv2dSame
from archft.models.depthwise import DepthwiseConv2d, tap_index, use_banded


def _conv(cls, channels, kernel, stride):
    torch.manual_seed(0)
    return cls(channels, channels, kernel, stride, 0 if cls is Conv2dSame else kernel // 2,
               groups=channels, bias=False)


@pytest.mark.parametrize("cls", [DepthwiseConv2d, Conv2dSame])
@pytest.mark.parametrize("kernel,stride,size", [(3, 1, 4), (5, 1, 4), (7, 1, 4), (5, 2, 8),
                                                (7, 2, 8), (3, 2, 7), (5, 1, 8), (7, 1, 3)])
def test_banded_path_equals_the_conv_with_gradients(cls, kernel, stride, size):
    conv = _conv(cls, 24, kernel, stride)
    x = torch.randn(5, 24, size, size, requires_grad=True)
    assert use_banded(conv, x)
    y = conv(x)
    g = torch.randn_like(y)
    gx, gw = torch.autograd.grad(y, (x, conv.weight), g)
    x2, w2 = x.detach().requires_grad_(), conv.weight.detach().requires_grad_()
    if cls is Conv2dSame:  # TF SAME: the extra padding goes at the end
        p = max((-(-size // stride) - 1) * stride + kernel - size, 0)
        pad = [p // 2, p - p // 2] * 2
    else:
        pad = [kernel // 2] * 4
    y2 = F.conv2d(F.pad(x2, pad), w2, None, stride, 0, 1, 24)
    assert y.shape == y2.shape
    torch.testing.assert_close(y, y2, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # evaluation: banded on maps up to 8x8 -> 4x4, else the conv
        torch.testing.assert_close(conv(x), y2, atol=1e-5, rtol=1e-5)
    rx, rw = torch.autograd.grad(y2, (x2, w2), g)
    torch.testing.assert_close(gx, rx, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gw, rw, atol=1e-4, rtol=1e-5)


def test_tap_index_marks_every_connection_once():
    idx = tap_index(4, 4, 3, 1, (1, 1, 1, 1))
    assert idx.shape == (16, 16)
    # An interior output sees all 9 taps, a corner output 4; the centre tap (5) joins o to o.
    assert (idx[5] > 0).sum() == 9 and (idx[0] > 0).sum() == 4
    assert torch.equal(idx.diagonal(), torch.full((16,), 5))


def test_conventional_path_where_the_band_does_not_pay():
    conv = _conv(DepthwiseConv2d, 8, 3, 1)
    big = torch.randn(1, 8, 16, 16, requires_grad=True)  # 256 x 256 entries per channel
    assert not use_banded(conv, big)
    eight = torch.randn(1, 8, 8, 8)
    assert use_banded(conv, eight.requires_grad_())
    with torch.no_grad():  # a forward alone is faster as the conv on 8x8 maps at stride 1
        assert not use_banded(conv, eight) and use_banded(conv, torch.randn(1, 8, 4, 4))
    dense = torch.nn.Conv2d(8, 8, 3, padding=1, bias=False)
    assert not use_banded(dense, torch.randn(1, 8, 4, 4, requires_grad=True))
