import torch
from torch import nn

from archft.models.mbconv import MBConv
from archft.nas import hidden_channel_order, remap_depth, remap_kernel, remap_mbconv


def test_remap_kernel_pads_and_crops():
    w = torch.arange(9.0).view(1, 1, 3, 3)
    w5 = remap_kernel(w, 5)
    assert w5.shape == (1, 1, 5, 5) and torch.equal(w5[..., 1:4, 1:4], w)
    assert w5.abs().sum() == w.abs().sum()
    w7 = remap_kernel(w, 7)
    assert torch.equal(w7[..., 2:5, 2:5], w)
    assert torch.equal(remap_kernel(w5, 3), w)


def test_padded_kernel_computes_the_same():
    conv3 = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    conv5 = nn.Conv2d(4, 6, 5, padding=2, bias=False)
    with torch.no_grad():
        conv5.weight.copy_(remap_kernel(conv3.weight, 5))
        x = torch.randn(2, 4, 9, 9)
        torch.testing.assert_close(conv5(x), conv3(x))


def _block(seed=0, **kw):
    torch.manual_seed(seed)
    b = MBConv(8, 8, kernel=3, stride=1, expand_ratio=6, **kw)
    for m in b.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
    return b.eval()


def test_smaller_expansion_keeps_the_strongest_channels():
    b = _block()
    order = hidden_channel_order(b)
    small = remap_mbconv(b, 3, 3)
    assert small.hidden == 24
    keep = torch.sort(order[:24]).values
    assert torch.equal(small.project.conv.weight, b.project.conv.weight[:, keep])
    assert torch.equal(small.expand.conv.weight, b.expand.conv.weight[keep])
    assert torch.equal(small.dw.bn.running_var, b.dw.bn.running_var[keep])
    norms = b.project.conv.weight.abs().sum(dim=(0, 2, 3))
    dropped = torch.ones(48, dtype=torch.bool)
    dropped[keep] = False
    assert norms[keep].min() >= norms[dropped].max()


def test_larger_expansion_and_kernel_preserve_the_function():
    b = _block(1)
    x = torch.randn(2, 8, 10, 10)
    with torch.no_grad():
        for kernel, expand in [(5, 6), (7, 6), (3, 9), (7, 12)]:
            torch.testing.assert_close(remap_mbconv(b, kernel, expand).eval()(x), b(x),
                                       rtol=1e-5, atol=1e-5)


def test_same_padding_remap_preserves_the_function():
    torch.manual_seed(0)
    b = MBConv(8, 16, kernel=3, stride=2, expand_ratio=6, tf_same=True).eval()
    x = torch.randn(2, 8, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(remap_mbconv(b, 7, 6).eval()(x), b(x), rtol=1e-5, atol=1e-5)


def test_remap_depth_copies_min_i_l():
    layers = [nn.Linear(2, 2) for _ in range(3)]
    deeper = remap_depth(layers, 5)
    assert len(deeper) == 5
    for i, layer in enumerate(deeper):
        assert torch.equal(layer.weight, layers[min(i, 2)].weight)
        assert layer is not layers[min(i, 2)]
    assert len(remap_depth(layers, 2)) == 2
