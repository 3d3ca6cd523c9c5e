"""Training on cached frozen-prefix features: exact without augmentation, automatic fallback."""

import pytest
import torch
import torch.nn.functional as F

from archft.core.errors import ConfigError
from archft.data import DataConfig, load_dataset
from archft.data.loaders import BatchTransform
from archft.engine import FeatureCacheConfig, FrozenPrefix, train_batches, train_step
from archft.nas import build_subnet, build_supernet
from archft.search import SearchConfig
from archft.space import SearchSpace

DEVICE = torch.device("cpu")


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig("digits", image_size=48))


def _transform(space, **aug):
    pre = space.spec.preprocessing
    return BatchTransform(48, pre.mean, pre.std, **aug)


def _grads(net):
    return {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("base,scope", [("efficientnet_lite0", "medium"), ("resnet18", "medium"),
                                        ("mobilenet_v2", "small")])
def test_cached_step_equals_full_forward_without_augmentation(digits, base, scope):
    space = SearchSpace.from_base(base, scope, weights="none", num_classes=10)
    tf = _transform(space)
    supernet = build_supernet(space)
    supernet.set_architecture([len(d.candidates) - 1 for d in space.decisions])
    full = train_batches(supernet, space.spec, space.trainable, digits, tf, 32, DEVICE, seed=3,
                         config=FeatureCacheConfig(cache=False))
    cached = train_batches(supernet, space.spec, space.trainable, digits, tf, 32, DEVICE, seed=3)
    assert not full.info["cached"] and full.info["reason"] == "off in the configuration"
    assert cached.info["cached"] and cached.info["views"] == 1  # no augmentation: one view
    state = {k: v.clone() for k, v in supernet.state_dict().items()}
    results = []
    for batches in (full, cached):
        supernet.load_state_dict(state)
        opt = torch.optim.SGD(supernet.trainable_parameters(), lr=0.1)
        stream = batches.stream(5)
        torch.manual_seed(0)  # dropout in the head draws the same mask on both paths
        for _ in range(2):  # the second step runs on the weights the first one moved
            loss, _ = train_step(supernet, batches.forward, next(stream), opt, DEVICE)
        results.append((loss, _grads(supernet), next(stream)[1]))
    (loss_f, grads_f, y_f), (loss_c, grads_c, y_c) = results
    assert torch.equal(y_f, y_c)  # the same rows in the same order
    assert abs(loss_f.item() - loss_c.item()) < 1e-5
    assert grads_f.keys() == grads_c.keys() and len(grads_f) > 0
    for name in grads_f:
        torch.testing.assert_close(grads_c[name], grads_f[name], atol=1e-5, rtol=1e-4,
                                   msg=lambda m, name=name: f"{name}: {m}")


def test_tail_of_prefix_is_the_network(digits):
    space = SearchSpace.from_base("efficientnet_lite0", "medium", weights="none", num_classes=10)
    net = build_subnet(space, [0, 1, 2, 3, 4])
    prefix = FrozenPrefix(space.spec, space.trainable)
    x = _transform(space)(digits.split_images("val")[:8])
    with torch.no_grad():
        torch.testing.assert_close(prefix.tail(net, prefix.prefix(net, x)), net(x), atol=1e-5,
                                   rtol=1e-5)
    assert space.spec.steps[prefix.start] == space.trainable[0]  # the scope's first block


def test_evaluation_features_are_encoded_once_per_split_and_prefix(digits):
    # The search, the fine-tuning and the vanilla baseline of a run evaluate the same splits:
    # their evaluators share one encoding, and another prefix or split is encoded anew.
    from archft.engine import ScopedEvaluator

    space = SearchSpace.from_base("efficientnet_lite0", "small", weights="none", num_classes=10)
    tf = _transform(space)

    def evaluator(net, split):
        return ScopedEvaluator(net, space.spec, space.trainable, digits.split_images(split),
                               digits.labels(split), tf, DEVICE)

    net, vanilla = build_supernet(space), build_subnet(space, space.base_architecture)
    vanilla.load_state_dict(net.materialize().state_dict())
    a, b, test = evaluator(net, "val"), evaluator(vanilla, "val"), evaluator(net, "test")
    assert b.features is a.features and test.features is not a.features
    prefix = FrozenPrefix(space.spec, space.trainable)
    assert torch.equal(a.features, prefix.encode(net, digits.split_images("val"), tf, DEVICE))
    other = build_supernet(space)
    with torch.no_grad():
        other.net.stem.conv.weight.mul_(2)
    c = evaluator(other, "val")
    assert c.features is not a.features
    assert torch.equal(c.features, prefix.encode(other, digits.split_images("val"), tf, DEVICE))
    assert evaluator(net, "val").features is a.features  # still held (4 entries)


def test_evaluation_features_held_are_bounded_in_bytes(digits, monkeypatch):
    from archft.engine import ScopedEvaluator, features

    monkeypatch.setattr(features, "_EVAL_MAX_BYTES", 1)  # only the newest entry stays
    space = SearchSpace.from_base("efficientnet_lite0", "small", weights="none", num_classes=10)
    net, tf = build_supernet(space), _transform(space)

    def evaluator(split):
        return ScopedEvaluator(net, space.spec, space.trainable, digits.split_images(split),
                               digits.labels(split), tf, DEVICE)

    val = evaluator("val")
    assert evaluator("val").features is val.features
    evaluator("test")
    assert len(features._EVAL) == 1 and evaluator("val").features is not val.features


def test_augmented_views_are_fixed_by_the_seed_and_differ(digits):
    space = SearchSpace.from_base("efficientnet_lite0", "small", weights="none", num_classes=10)
    tf = _transform(space, crop_pad=6)
    net = build_supernet(space)
    cfg = FeatureCacheConfig(views=3)
    a = train_batches(net, space.spec, space.trainable, digits, tf, 16, DEVICE, 0, cfg)
    b = train_batches(net, space.spec, space.trainable, digits, tf, 16, DEVICE, 0, cfg)
    assert a.info["views"] == 3
    assert not a.info["reused"] and b.info["reused"]  # built once for the same prefix and seed
    c = train_batches(net, space.spec, space.trainable, digits, tf, 16, DEVICE, 1, cfg)
    assert not c.info["reused"]  # another seed draws other views
    other = build_supernet(space)
    with torch.no_grad():
        other.net.stem.conv.weight.mul_(2)
    d = train_batches(other, space.spec, space.trainable, digits, tf, 16, DEVICE, 1, cfg)
    assert not d.info["reused"]  # another prefix computes other features
    xa, ya = next(a.stream(7))
    xb, yb = next(b.stream(7))
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # Each step mixes views: the rows of a batch are not all the same view of their images.
    prefix = FrozenPrefix(space.spec, space.trainable)
    images = digits.split_images("train")
    views = torch.stack([prefix.encode(net, images, tf, DEVICE, (0, "views", v))
                         for v in range(3)])
    assert not torch.equal(views[0], views[1])
    steps = [next(a.stream(s))[0] for s in range(4)]
    flat = views.flatten(2)
    used = torch.zeros(3, dtype=torch.bool)
    for x in steps:
        match = torch.cdist(flat, x.flatten(1)[None].expand(3, -1, -1),
                            compute_mode="donot_use_mm_for_euclid_dist") == 0  # (V, N, B)
        assert match.flatten(0, 1).any(0).all()  # every row is one of the cached views
        used |= match.any(1).any(1)
    assert used.all()  # and every view is drawn


def test_falls_back_to_full_forwards_when_the_cache_does_not_fit(digits, caplog):
    space = SearchSpace.from_base("efficientnet_lite0", "small", weights="none", num_classes=10)
    net = build_supernet(space)
    tf = _transform(space, crop_pad=6)
    with caplog.at_level("INFO"):
        b = train_batches(net, space.spec, space.trainable, digits, tf, 16, DEVICE, 0,
                          FeatureCacheConfig(views=4, max_bytes=1 << 20))
    assert not b.info["cached"] and "GiB > max_bytes" in b.info["reason"]
    assert "training with full forwards" in caplog.text
    x, _ = next(b.stream(0))
    assert x.shape == (16, 3, 48, 48)  # images: the full path
    logits = b.forward(net, x)
    assert logits.shape == (16, 10) and torch.isfinite(F.log_softmax(logits, 1)).all()


def test_feature_cache_config_is_checked():
    with pytest.raises(ConfigError, match="views must be a positive integer"):
        FeatureCacheConfig(views=0)
    c = SearchConfig.from_dict({"features": {"views": 2}})
    assert c.features.views == 2 and c.features.cache
    with pytest.raises(ConfigError, match="unknown features option 'view'"):
        SearchConfig.from_dict({"features": {"view": 2}})
