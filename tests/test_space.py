import pytest

from archft.core.errors import ConfigError
from archft.space import SCOPES, SearchSpace, parse_candidate

# Table 1 of seed 000.
PAPER_DECISIONS = {"resnet18": (4, 8, 12, 16), "resnet50": (3, 9, 13, 16)}
# MBConv: one decision per inverted-residual block of the last 1 / 2 / 3 / all stages.
MBCONV_DECISIONS = {"mobilenet_v2": (1, 4, 7, 17), "efficientnet_lite0": (1, 5, 8, 16)}


@pytest.mark.parametrize("base", list(PAPER_DECISIONS))
@pytest.mark.parametrize("i,scope", list(enumerate(SCOPES)))
def test_resnet_counts_match_table_1(base, i, scope):
    space = SearchSpace.from_base(base, scope, weights="none")
    n = PAPER_DECISIONS[base][i]
    assert space.num_decisions == n and space.num_subnets == 2 ** n
    assert all(d.candidates == ("k3", "k5") and d.base == 0 for d in space.decisions)


@pytest.mark.parametrize("base", list(MBCONV_DECISIONS))
@pytest.mark.parametrize("i,scope", list(enumerate(SCOPES)))
def test_mbconv_counts(base, i, scope):
    space = SearchSpace.from_base(base, scope, weights="none")
    assert space.num_decisions == MBCONV_DECISIONS[base][i]
    full = [d for d in space.decisions if len(d.candidates) == 6]
    # Only the expansion-1 first block (in the full scope) has fewer: kernel choices alone.
    assert len(full) == space.num_decisions - (scope == "full")
    assert space.num_subnets == 6 ** len(full) * 3 ** (space.num_decisions - len(full))
    assert space.base_architecture is not None


def test_resnet_decision_layers_and_trainable():
    space = SearchSpace.from_base("resnet50", "small", weights="none")
    assert [d.layer for d in space.decisions] == [f"layer4.{i}.conv2" for i in range(3)]
    assert space.trainable == ("layer4.0", "layer4.1", "layer4.2", "fc")
    r18 = SearchSpace.from_base("resnet18", "small", weights="none")
    assert r18.decisions[0].norm == "layer4.0.bn1"


def test_custom_kernels_and_expansions():
    space = SearchSpace.from_base("resnet18", "small", kernels=(3, 5, 7), weights="none")
    assert space.num_subnets == 3 ** 4
    lite = SearchSpace.from_base("efficientnet_lite0", "small", kernels=(3, 5), expansions=(6,),
                                 weights="none")
    assert lite.decisions[0].candidates == ("k3_e6", "k5_e6")
    assert parse_candidate("k7_e3") == (7, 3) and parse_candidate("k5") == (5, None)


@pytest.mark.parametrize("kwargs,match", [
    ({"base": "vgg"}, "unknown base"),
    ({"scope": "huge"}, "unknown scope"),
    ({"kernels": (4, 5)}, "odd"),
    ({"kernels": (3, 3)}, "distinct"),
    ({"expansions": (3,)}, "no expansion"),
    ({"remap": "magic"}, "unknown remap"),
])
def test_bad_space_options(kwargs, match):
    args = {"base": "resnet18", "scope": "small", "weights": "none", **kwargs}
    with pytest.raises(ConfigError, match=match):
        SearchSpace.from_base(**args)


def test_validate_architecture():
    space = SearchSpace.from_base("resnet18", "small", weights="none")
    assert space.validate([1, 0, 1, 0]) == [1, 0, 1, 0]
    with pytest.raises(ValueError, match="4 decisions"):
        space.validate([1, 0])
    with pytest.raises(ValueError, match="out of range"):
        space.validate([0, 0, 0, 2])
