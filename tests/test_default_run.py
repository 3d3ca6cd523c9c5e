"""The headline guarantee: the default two-stage run on digits with the offline ImageNet
EfficientNet-Lite0 weights early-stops its search and fine-tunes to >= 95% test accuracy
(about two minutes on two CPU cores)."""

from archft.data import DataConfig, load_dataset
from archft.finetune import FinetuneConfig, run_finetune
from archft.search import SearchConfig, run_search
from archft.space import Architecture, SearchSpace


def test_default_search_stops_early_and_finetunes_to_95(tmp_path):
    data = DataConfig()  # digits, 32 px, seed 0
    dataset = load_dataset(data)
    space = SearchSpace.from_base("efficientnet_lite0", "small", weights="imagenet",
                                  num_classes=10)
    config = SearchConfig(progress=False)  # reinforce, budget 200, every default
    summary = run_search(space, dataset, data, config, tmp_path / "search")
    assert summary["stopped_early"] and summary["search_steps"] < config.budget
    assert summary["search_cost_saved"] > 0
    arch = Architecture.load(tmp_path / "search" / "architecture.json")
    metrics = run_finetune(arch, dataset, data, FinetuneConfig(progress=False),
                           tmp_path / "model", search_dir=tmp_path / "search")
    assert metrics["test_accuracy"] >= 0.95
