import json

import pytest

from archft.core.errors import ArchitectureError
from archft.space import Architecture, SearchSpace


@pytest.fixture
def space():
    return SearchSpace.from_base("resnet18", "medium", weights="none", num_classes=10)


def test_round_trip(tmp_path, space):
    arch = Architecture.of(space, [1, 1, 1, 0, 0, 0, 0, 1])  # the paper's Fig. 4a result
    path = arch.save(tmp_path / "run" / "architecture.json")
    data = json.loads(path.read_text())
    assert data["format"] == 2 and data["base"] == "resnet18" and data["num_classes"] == 10
    assert data["depth"] == [0]
    assert data["decisions"][0] == {"layer": "layer3.0.conv1", "candidates": ["k3", "k5"],
                                    "choice": "k5"}
    loaded = Architecture.load(path, space)
    assert loaded.choices == arch.choices and loaded.space == space
    assert loaded.names == ["k5"] * 3 + ["k3"] * 4 + ["k5"]
    assert [p.name for p in path.parent.iterdir()] == ["architecture.json"]  # no temp left


def test_mbconv_round_trip(tmp_path):
    space = SearchSpace.from_base("efficientnet_lite0", "medium", weights="imagenet")
    arch = Architecture.of(space, [5, 0, 3, 2, 1])
    loaded = Architecture.load(arch.save(tmp_path / "a.json"))
    assert loaded.names == ["k7_e6", "k3_e3", "k5_e6", "k5_e3", "k3_e6"]
    assert loaded.space.expansions == (3, 6)


def _edit(tmp_path, space, change):
    data = Architecture.of(space, [0] * 8).to_dict()
    change(data)
    path = tmp_path / "architecture.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("change,match", [
    (lambda d: d.update(base="resnet50"), "base is 'resnet50', expected 'resnet18'"),
    (lambda d: d["decisions"].pop(), "7 decisions, but resnet18/medium has 8"),
    (lambda d: d["decisions"][2].update(choice="k7"), "layer3.1.conv1: unknown choice 'k7'"),
    (lambda d: d["decisions"][0].update(layer="layer1.0.conv1"), "expected 'layer3.0.conv1'"),
    (lambda d: d["decisions"][0].update(candidates=["k3", "k7"]), "candidates"),
    (lambda d: d.update(format=3), "format 3 is not supported"),
    (lambda d: d.update(format=1), "format 1 has no depth field"),
    (lambda d: d.update(depth=[0, 2]), "depth must be a run of integers"),
    (lambda d: d.update(depth=[-1, 0]), "depth decisions are for MBConv bases"),
    (lambda d: d.pop("scope"), "missing field 'scope'"),
    (lambda d: d.update(num_classes="10"), "'num_classes' should be a int"),
    (lambda d: d.update(scope="huge"), "unknown scope"),
])
def test_rejects_bad_files(tmp_path, space, change, match):
    path = _edit(tmp_path, space, change)
    with pytest.raises(ArchitectureError, match=match) as err:
        Architecture.load(path, space)
    assert str(path) in str(err.value)


def test_rejects_unreadable_files(tmp_path):
    bad = tmp_path / "architecture.json"
    bad.write_text("{not json")
    with pytest.raises(ArchitectureError, match="not valid JSON"):
        Architecture.load(bad)
    with pytest.raises(ArchitectureError, match="not found"):
        Architecture.load(tmp_path / "missing.json")
    bad.write_text("[1, 2]")
    with pytest.raises(ArchitectureError, match="not a JSON object"):
        Architecture.load(bad)


def test_reads_format_1_written_before_depth(tmp_path, space):
    data = Architecture.of(space, [1, 1, 1, 0, 0, 0, 0, 1]).to_dict()
    data["format"] = 1
    del data["depth"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    loaded = Architecture.load(path, space)
    assert loaded.space.depth == (0,) and loaded.names == ["k5"] * 3 + ["k3"] * 4 + ["k5"]


def test_depth_round_trip(tmp_path):
    space = SearchSpace.from_base("efficientnet_lite0", "medium", weights="none", depth=[-1, 0, 1])
    choices = list(space.base_architecture)
    choices[3], choices[4] = 6, 2  # blocks.14 skipped, a new k3_e6 block after it
    loaded = Architecture.load(Architecture.of(space, choices).save(tmp_path / "a.json"))
    assert loaded.space == space and loaded.space.depth == (-1, 0, 1)
    assert [d.layer for d in loaded.space.decisions][3:5] == ["blocks.14", "blocks.14+1"]
    assert loaded.names[3:5] == ["skip", "k3_e6"]
