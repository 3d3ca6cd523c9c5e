"""MAdds and parameters: the counter against published figures, the space's cost table against
counting each subnet, and the cost-aware objective of every strategy."""

import json
import math
import random

import pytest
import torch
import torchvision

from archft.core.errors import ConfigError
from archft.models import build_base
from archft.models.cost import count_cost
from archft.nas import build_scoped_base, build_subnet, build_supernet
from archft.nas.cost import cost_table
from archft.search import SearchConfig, run_search
from archft.search.earlystop import EarlyStopConfig
from archft.search.objective import CostConfig, cost_loss, cost_reward
from archft.search.pareto import front
from archft.space import SearchSpace
from tests import test_search

# The same digits data and Lite0 small-scope space as tests/test_search.py (module fixtures).
DATA, digits, space = test_search.DATA, test_search.digits, test_search.space


# torchvision's weights metadata: `_ops` (GMAdds at 224 px) and `num_params`.
@pytest.mark.parametrize("name,weights", [
    ("resnet18", "ResNet18_Weights.IMAGENET1K_V1"),
    ("resnet50", "ResNet50_Weights.IMAGENET1K_V2"),
    ("mobilenet_v2", "MobileNet_V2_Weights.IMAGENET1K_V1"),
])
def test_counter_matches_torchvisions_published_figures(name, weights):
    meta = torchvision.models.get_weight(weights).meta
    cost = count_cost(getattr(torchvision.models, name)(), 224)
    assert abs(cost.madds / 1e9 - meta["_ops"]) / meta["_ops"] < 0.02
    assert cost.params == meta["num_params"]


def test_lite0_matches_its_paper_and_every_layout_of_the_base_counts_the_same():
    # EfficientNet-Lite0: 0.39 G MAdds (385 M), 4.7 M parameters at 224 px.
    cost = count_cost(build_base("efficientnet_lite0", "none", 1000), 224)
    assert 380e6 < cost.madds < 390e6 and 4.6e6 < cost.params < 4.7e6
    space = SearchSpace.from_base("efficientnet_lite0", "medium", weights="none")
    plain = count_cost(build_base("efficientnet_lite0", "none", 10), 128)
    # Frozen (FrozenBatchNorm2d), as its own-choices subnet, and as the supernet's base subnet:
    # the same function, so the same count, exactly (FlopCounterMode differs 2.4x here).
    for net in (build_scoped_base(space), build_subnet(space, space.base_architecture),
                build_supernet(space)):
        assert count_cost(net, 128).to_dict() == plain.to_dict()


@pytest.mark.parametrize("base,scope,depth", [
    ("efficientnet_lite0", "medium", None), ("resnet18", "medium", None),
    ("mobilenet_v2", "small", None), ("efficientnet_lite0", "medium", (-1, 0, 1)),
    ("mobilenet_v2", "medium", (-1, 0, 1))])
def test_cost_table_equals_counting_each_materialised_subnet(base, scope, depth):
    space = SearchSpace.from_base(base, scope, weights="none", depth=depth)
    table = cost_table(space, 96)
    rng = random.Random(0)
    archs = [space.base_architecture] + [[rng.randrange(len(d.candidates))
                                          for d in space.decisions] for _ in range(3)]
    supernet = build_supernet(space)
    for arch in archs:
        counted = count_cost(build_subnet(space, arch), 96)
        row = table.of(arch)
        assert (row["madds"], row["params"]) == (counted.madds, counted.params)
        supernet.set_architecture(arch)
        assert count_cost(supernet, 96).madds == counted.madds
        scope_blocks = space.trainable[:len(space.trainable) - len(space.spec.tail)]
        assert row["scope_madds"] == counted.madds_under(scope_blocks)
    b = table.bounds()
    assert b["min_madds"] <= table.of(space.base_architecture)["madds"] <= b["max_madds"]
    # E[MAdds] under one-hot probabilities is the architecture's count, and differentiable.
    arch = archs[1]
    probs = [torch.nn.functional.one_hot(torch.tensor(a), len(d.candidates)).float()
             .requires_grad_() for a, d in zip(arch, space.decisions)]
    expected = table.expected_madds(probs)
    assert int(expected.item()) == table.of(arch)["madds"]
    expected.backward()
    assert all(p.grad is not None for p in probs)


def test_objective_forms():
    off = CostConfig()
    assert cost_reward(0.8, 50.0, 100.0, off) == 0.8  # weight 0: the reward itself
    log = CostConfig(weight=0.2, base=10)
    assert cost_reward(0.8, 10.0, 100.0, log) == pytest.approx(0.8 + 0.2)  # log10(0.1) = -1
    assert cost_reward(0.8, 100.0, 100.0, log) == 0.8
    mnas = CostConfig(weight=0.5, form="mnas")
    assert cost_reward(0.8, 25.0, 100.0, mnas) == pytest.approx(1.6)
    loss = cost_loss(torch.tensor(1000.0, dtype=torch.float64), 10.0, log)
    assert loss.item() == pytest.approx(0.2 * 2)
    assert front([(0.9, 10), (0.8, 5), (0.7, 6), (0.9, 12)]) == [True, True, False, False]


@pytest.mark.parametrize("kw,match", [
    ({"cost": {"weight": -1}}, "cost.weight"), ({"cost": {"base": 1}}, "cost.base"),
    ({"cost": {"form": "flops"}}, "unknown cost form"),
    ({"cost": {"weight": 0.1, "form": "mnas"}, "reward": "neg_loss"}, "positive"),
    ({"cost": {"lambda": 0.1}}, "unknown cost option 'lambda'"),
])
def test_bad_cost_options(kw, match):
    with pytest.raises(ConfigError, match=match):
        SearchConfig.from_dict(kw)


def _search(tmp_path, name, digits, space, **kw):
    base = dict(budget=8, controller_steps=2, checkpoint_every=4, progress=False,
                early_stop=EarlyStopConfig(enabled=False))
    out = tmp_path / name
    summary = run_search(space, digits, DATA, SearchConfig(**{**base, **kw}), out)
    rows = (out / "search_history.jsonl").read_text().splitlines()
    return summary, [json.loads(r) for r in rows]


@pytest.mark.slow
@pytest.mark.parametrize("strategy,kw", [
    ("reinforce", {"warmup": 0.25, "ranking": 0.5, "final": "best_scored",
                   "controller_samples": 4}),
    ("random", {}), ("darts", {"darts_lr": 0.3})])
def test_weight_zero_is_the_accuracy_search_and_a_heavy_cost_picks_the_cheapest(
        tmp_path, digits, space, strategy, kw):
    plain, plain_rows = _search(tmp_path, "plain", digits, space, strategy=strategy, **kw)
    zero, zero_rows = _search(tmp_path, "zero", digits, space, strategy=strategy,
                              cost=CostConfig(weight=0.0, base=2.0, target=1e6), **kw)
    assert zero_rows == plain_rows and zero["architecture"] == plain["architecture"]
    heavy, heavy_rows = _search(tmp_path, "heavy", digits, space, strategy=strategy,
                                cost=CostConfig(weight=50.0), **kw)
    assert heavy_rows != plain_rows
    table = cost_table(space, 32)
    cheapest = min(range(len(space.decisions[0].candidates)), key=lambda i: table.madds[0][i])
    assert heavy["architecture"] == [space.decisions[0].candidates[cheapest]]
    assert heavy["madds"] == heavy["madds_range"]["min_madds"] < heavy["base_madds"]
    assert heavy["madds_vs_base"] < 1 and heavy["cost_target"] == heavy["base_madds"]
    assert any(p["front"] for p in heavy["pareto"])
    assert all(math.isfinite(p["objective"]) for p in heavy["pareto"])
