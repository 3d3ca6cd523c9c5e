"""Supernet behaviour over every registered base and scope (timm test_models style)."""

import copy
import subprocess
import sys

import onnxruntime as ort
import pytest
import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from archft.models.mbconv import MBConv
from archft.nas import ChoiceLayer, build_scoped_base, build_subnet, build_supernet
from archft.space import SCOPES, SearchSpace

BASES = ["resnet18", "resnet50", "mobilenet_v2", "efficientnet_lite0"]
CASES = [(b, s) for b in BASES for s in SCOPES]
SIZE = 32


def _weights(base):
    # Lite0 has real offline ImageNet weights; the torchvision bases use their seeded init.
    return "imagenet" if base == "efficientnet_lite0" else "none"


@pytest.fixture(scope="module")
def spaces():
    cache = {}

    def get(base, scope):
        if (base, scope) not in cache:
            space = SearchSpace.from_base(base, scope, weights=_weights(base), num_classes=10)
            cache[(base, scope)] = (space, build_supernet(space))
        return cache[(base, scope)]

    return get


def _random_archs(space, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [[int(torch.randint(len(d.candidates), (1,), generator=g)) for d in space.decisions]
            for _ in range(n)]


def _trainable(name, space):
    return any(name == p or name.startswith(p + ".") for p in space.trainable)


@pytest.mark.parametrize("base,scope", CASES)
def test_forward_shape_and_finite(spaces, base, scope):
    space, net = spaces(base, scope)
    for arch in _random_archs(space, 2):
        net.set_architecture(arch)
        with torch.no_grad():
            out = net(torch.randn(2, 3, SIZE, SIZE))
        assert out.shape == (2, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize("base,scope", CASES)
def test_only_scope_and_head_get_gradients(spaces, base, scope):
    space, net = spaces(base, scope)
    arch = _random_archs(space, 1, seed=1)[0]
    net.set_architecture(arch)
    net.train()
    net.zero_grad(set_to_none=True)
    net(torch.randn(4, 3, SIZE, SIZE)).logsumexp(1).sum().backward()
    active = set()
    for layer, a in zip(net.choices, arch):
        active |= {id(p) for p in layer.candidates[a].parameters()}
    for name, p in net.net.named_parameters():
        inside = _trainable(name, space)
        assert p.requires_grad == inside, name
        if not inside:
            assert p.grad is None, name
        elif ".candidates." not in name or id(p) in active:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:  # an inactive candidate
            assert p.grad is None, name
    head = net.net.get_submodule(space.spec.classifier)
    assert head.weight.grad is not None
    net.eval()


@pytest.mark.parametrize("base,scope", CASES)
def test_frozen_batchnorm_survives_a_training_step(spaces, base, scope):
    space, shared = spaces(base, scope)
    net = copy.deepcopy(shared)  # train a private copy; other tests reuse the shared one
    frozen = {n: m for n, m in net.net.named_modules() if not _trainable(n, space)
              and isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d))}
    assert frozen and all(isinstance(m, FrozenBatchNorm2d) for m in frozen.values())
    inside = [m for n, m in net.net.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert inside and all(_trainable(n, space) for n, m in net.net.named_modules()
                          if isinstance(m, nn.BatchNorm2d))
    before = {n: m.running_mean.clone() for n, m in frozen.items()}
    stats_in = [m.running_mean.clone() for m in inside]
    weights_out = {n: p.clone() for n, p in net.net.named_parameters() if not p.requires_grad}
    opt = torch.optim.SGD(net.trainable_parameters(), lr=0.01)
    net.set_architecture(_random_archs(space, 1, seed=2)[0])
    net.train()
    loss = nn.functional.cross_entropy(net(torch.randn(8, 3, SIZE, SIZE)),
                                       torch.randint(10, (8,)))
    loss.backward()
    opt.step()
    net.eval()
    assert all(torch.isfinite(p).all() for p in net.parameters())
    for n, m in frozen.items():
        assert torch.equal(m.running_mean, before[n]), n
    for n, p in net.net.named_parameters():
        if n in weights_out:
            assert torch.equal(p, weights_out[n]), n
    assert any(not torch.equal(m.running_mean, s) for m, s in zip(inside, stats_in))


@pytest.mark.parametrize("base,scope", CASES)
def test_materialized_subnet_equals_supernet(spaces, base, scope):
    space, net = spaces(base, scope)
    x = torch.randn(3, 3, SIZE, SIZE)
    for arch in _random_archs(space, 3, seed=3):
        net.set_architecture(arch)
        sub = net.materialize()
        assert not any(isinstance(m, ChoiceLayer) for m in sub.modules())
        n_params = sum(p.numel() for p in sub.parameters())
        with torch.no_grad():
            expected = net(x)
            torch.testing.assert_close(sub(x), expected, rtol=1e-5, atol=1e-5)
        # The same architecture built directly from the base has the same structure.
        direct = build_subnet(space, arch)
        assert list(direct.state_dict()) == list(sub.state_dict())
        assert n_params == sum(p.numel() for p in direct.parameters())


@pytest.mark.parametrize("base", ["resnet18", "resnet50"])
@pytest.mark.parametrize("scope", SCOPES)
def test_resnet_function_preserving_at_init(base, scope):
    space = SearchSpace.from_base(base, scope, weights="none", num_classes=10)
    net = build_supernet(space)  # fresh: the shared ones have taken training steps
    reference = build_scoped_base(space)
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = reference(x)
        for arch in _random_archs(space, 3, seed=4) + [[1] * space.num_decisions]:
            net.set_architecture(arch)
            torch.testing.assert_close(net(x), expected, rtol=1e-4, atol=1e-5)


def test_mbconv_kernel_choices_preserve_function():
    space = SearchSpace.from_base("efficientnet_lite0", "medium", weights="imagenet",
                                  num_classes=10)
    net = build_supernet(space)
    reference = build_scoped_base(space)
    x = torch.randn(2, 3, 64, 64)
    # Base expansion (6) and a kernel at least the base's: centre remapping preserves the
    # function. (A 5x5 block cropped to 3x3 does not, and is not expected to.)
    from archft.space import parse_candidate

    def grows(d, c):
        k, e = parse_candidate(c)
        return e == 6 and k >= parse_candidate(d.candidates[d.base])[0]

    options = [[i for i, c in enumerate(d.candidates) if grows(d, c)] for d in space.decisions]
    assert all(options)
    with torch.no_grad():
        expected = reference(x)
        for pick in (0, -1):
            net.set_architecture([opts[pick] for opts in options])
            torch.testing.assert_close(net(x), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("base,scope", [("resnet18", "small"), ("mobilenet_v2", "medium")])
def test_remapped_kernels_zero_outside_centre(spaces, base, scope):
    space, net = spaces(base, scope)
    for layer, d in zip(net.choices, space.decisions):
        for cand, name in zip(layer.candidates, d.candidates):
            conv = cand.conv if d.norm else cand.dw.conv
            k = conv.kernel_size[0]
            if k <= 3:
                continue
            o = (k - 3) // 2
            w = conv.weight.detach().clone()
            assert w[..., o:o + 3, o:o + 3].abs().sum() > 0, name
            w[..., o:o + 3, o:o + 3] = 0
            assert w.abs().sum() == 0, name


def test_random_remap_is_an_ablation():
    center = build_supernet(SearchSpace.from_base("resnet18", "small", weights="none"))
    rand = SearchSpace.from_base("resnet18", "small", weights="none", remap="random")
    rand_net = build_supernet(rand)
    c3, c5 = (c.conv.weight for c in center.choices[0].candidates)
    r3, r5 = (c.conv.weight for c in rand_net.choices[0].candidates)
    assert torch.equal(c3, r3)  # the base kernel is still the pretrained one
    assert r5[..., 0, 0].abs().sum() > 0 and not torch.equal(c5, r5)
    # Reproducible: the same ablation twice gives the same init, in another process too.
    assert torch.equal(r5, build_supernet(rand).choices[0].candidates[1].conv.weight)
    code = ("from archft.nas import build_supernet; from archft.space import SearchSpace; "
            "s = build_supernet(SearchSpace.from_base('resnet18', 'small', weights='none', "
            "remap='random')); "
            "print(float(s.choices[0].candidates[1].conv.weight.sum()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout) == float(r5.sum())


def test_materialize_copies_only_chosen_ops(spaces):
    space, net = spaces("efficientnet_lite0", "medium")
    sub = net.materialize(_random_archs(space, 1, seed=5)[0])
    assert sum(isinstance(m, MBConv) for m in sub.modules()) == 16
    sub_params = sum(p.numel() for p in sub.parameters())
    super_params = sum(p.numel() for p in net.parameters())
    assert sub_params < super_params / 2


@pytest.mark.parametrize("base", ["resnet18", "efficientnet_lite0"])
def test_materialized_subnet_exports_to_onnx(spaces, tmp_path, base):
    space, net = spaces(base, "small")
    arch = [len(d.candidates) - 1 for d in space.decisions]
    sub = net.materialize(arch)
    x = torch.randn(2, 3, SIZE, SIZE)
    path = tmp_path / "m.onnx"
    torch.onnx.export(sub, (x,), str(path), dynamo=False, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}})
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x5 = torch.randn(5, 3, SIZE, SIZE)
    got = sess.run(None, {"input": x5.numpy()})[0]
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), sub(x5), rtol=1e-4, atol=1e-4)


DEPTH = (-1, 0, 1)


def _close(a, b, rel=1e-4):
    """Equal up to rounding, relative to the outputs' scale (MobileNetV2's seeded init gives
    logits of about 1e-9)."""
    return bool((a - b).abs().max() <= rel * b.abs().max())


@pytest.mark.parametrize("base", ["efficientnet_lite0", "mobilenet_v2"])
def test_depth_decisions_skip_and_add_blocks_preserving_the_function(base):
    space = SearchSpace.from_base(base, "medium", weights=_weights(base), num_classes=10,
                                  depth=DEPTH)
    stages = {"efficientnet_lite0": ("blocks.14", "blocks.15"),
              "mobilenet_v2": ("features.16", "features.17")}[base]
    last, single = stages  # the scope's two stages: the second has one block
    layers = {d.layer: d for d in space.decisions}
    assert layers[last].candidates[-1] == "skip" and "skip" not in layers[single].candidates
    new = layers[f"{last}+1"]
    assert new.source == last and new.candidates[new.base] == "skip"
    assert f"{single}+1" not in layers  # a one-block stage changes its shape: no new position
    assert f"{last}+1" in space.trainable and f"{last}+1" in space.spec.steps
    x = torch.randn(2, 3, 64, 64)
    supernet, base_net = build_supernet(space), build_scoped_base(space)
    with torch.no_grad():
        reference = base_net(x)
        # The base's choices (the new block skipped): MobileNetV2's blocks become MBConv, the
        # same function up to rounding.
        assert _close(supernet(x), reference)
        t = list(space.decisions).index(new)
        for i in range(1, len(new.candidates)):  # every new block starts as the identity
            arch = list(space.base_architecture)
            arch[t] = i
            supernet.set_architecture(arch)
            assert _close(supernet(x), reference)
        # ... and copies the stage's last block (eq. 1): the same expansion and depthwise weights
        arch[t] = new.candidates.index(layers[last].candidates[layers[last].base])
        supernet.set_architecture(arch)
        copy_ = supernet.net.get_submodule(new.layer).candidates[arch[t]]
        own = supernet.net.get_submodule(last).candidates[layers[last].base]
        assert torch.equal(copy_.expand.conv.weight, own.expand.conv.weight)
        assert torch.equal(copy_.dw.conv.weight, own.dw.conv.weight)
        assert not copy_.project.bn.weight.any() and not copy_.project.bn.bias.any()
        # Skipping the stage's last block changes the function; materialised == supernet ==
        # the subnet built from the base.
        arch[list(space.decisions).index(layers[last])] = len(layers[last].candidates) - 1
        supernet.set_architecture(arch)
        out = supernet(x)
        assert not _close(out, reference, rel=1e-2)
        assert _close(supernet.materialize(arch)(x), out)
        assert _close(build_subnet(space, arch)(x), out)


def test_a_new_block_learns_from_the_identity():
    space = SearchSpace.from_base("efficientnet_lite0", "medium", weights="imagenet",
                                  num_classes=10, depth=(0, 1))
    t = [d.layer for d in space.decisions].index("blocks.14+1")
    arch = list(space.base_architecture)
    arch[t] = 1
    net = build_subnet(space, arch).train()
    loss = net(torch.randn(4, 3, 64, 64)).square().mean()
    loss.backward()
    block = net.get_submodule("blocks.14+1")
    assert block.project.bn.weight.grad.abs().sum() > 0  # the zero scale gets a gradient


def test_depth_is_refused_where_it_does_not_apply():
    from archft.core.errors import ConfigError

    with pytest.raises(ConfigError, match="depth decisions are for MBConv bases"):
        SearchSpace.from_base("resnet18", "small", depth=(-1, 0))
    with pytest.raises(ConfigError, match="run of integers holding 0"):
        SearchSpace.from_base("efficientnet_lite0", "small", depth=(1, 2))
