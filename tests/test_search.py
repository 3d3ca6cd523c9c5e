"""Stage 1 end to end on digits with the real offline EfficientNet-Lite0 weights (CPU)."""

import contextlib
import dataclasses
import itertools
import json
import os
import signal

import pytest
from PIL import Image

from archft.core.errors import ConfigError
from archft.data import DataConfig, load_dataset
from archft.nas import build_supernet
from archft.search import SearchConfig, run_search
from archft.search.earlystop import EarlyStopConfig
from archft.space import Architecture, SearchSpace

DATA = DataConfig("digits", image_size=32)


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DATA)


@pytest.fixture(scope="module")
def space():
    return SearchSpace.from_base("efficientnet_lite0", "small", weights="imagenet",
                                 num_classes=10)


def _config(**kw):
    # Early stopping runs (its state is checkpointed too) but cannot fire: eps < 0.
    base = dict(budget=12, controller_steps=2, checkpoint_every=4, progress=False,
                early_stop=EarlyStopConfig(window=5, min_updates=10, eps=-1.0))
    return SearchConfig(**{**base, **kw})


def _history(out):
    return [json.loads(line) for line in (out / "search_history.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("strategy", ["reinforce", "random", "darts"])
def test_strategy_writes_every_output(tmp_path, digits, space, strategy):
    out = tmp_path / strategy
    s = run_search(space, digits, DATA, _config(strategy=strategy, early_stop=EarlyStopConfig(
        enabled=False)), out)
    assert {p.name for p in out.iterdir()} == {"architecture.json", "search_history.jsonl",
                                               "action_heatmap.png", "reward_curve.png",
                                               "pareto.png", "summary.json",
                                               "supernet.safetensors"}
    arch = Architecture.load(out / "architecture.json", space)
    assert arch.names == s["architecture"]
    history = _history(out)
    per_step = 1 if strategy == "darts" else 2  # darts_steps vs controller_steps
    assert len(history) == s["controller_updates"] == 12 * per_step and s["search_steps"] == 12
    row = history[-1]
    assert {"step", "reward", "baseline", "entropy", "probs", "greedy"} <= set(row)
    assert len(row["probs"]) == 1 and abs(sum(row["probs"][0]) - 1) < 1e-5
    assert 0 <= row["reward"] <= 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["strategy"] == strategy and summary["search_budget"] == 12
    assert summary["images_seen"] == 12 * 64 and summary["search_seconds"] > 0
    assert not summary["stopped_early"] and summary["search_cost_saved"] == 0
    # Lite0's last stage sees 1x1 maps at 32 px: the kernel choice is flagged as inert.
    assert summary["inert_kernel_decisions"][0]["layer"] == "blocks.15"
    with Image.open(out / "action_heatmap.png") as im:
        assert im.size[0] > 400 and im.size[1] > 150
    with Image.open(out / "reward_curve.png") as im:
        assert im.size[0] > 400 and im.size[1] > 150


def test_early_stop_records_step_and_saving(tmp_path, digits, space):
    # A settled controller: tau low enough that the start already counts as settled, and a
    # huge eps, so the stop must come right after min_updates.
    # huge eps, so the stop must come as soon as min_updates (step 5) and min_fraction (25% of
    # the budget: step 10) allow.
    cfg = _config(budget=40, early_stop=EarlyStopConfig(tau=0.1, window=5, eps=10.0,
                                                        min_updates=10))
    s = run_search(space, digits, DATA, cfg, tmp_path / "es")
    assert s["stopped_early"] and s["early_stop_step"] == 10 and s["search_steps"] == 10
    assert s["search_cost_saved"] == pytest.approx(1 - 10 / 40)
    assert s["architecture_at_stop"] is not None and "p >= 0.1" in s["stop_reason"]
    assert not (tmp_path / "es" / "checkpoint.pt").exists()


class Crash(Exception):
    pass


# The second: a ranking phase from step 6 whose best scored subnet is the pick; the
# checkpoint at step 8 must carry the subnets scored so far.
@pytest.mark.parametrize("kw", [{}, dict(ranking=0.5, controller_samples=3, final="best_scored")])
def test_resume_after_a_crash_matches_an_uninterrupted_run(tmp_path, digits, space, kw):
    full = run_search(space, digits, DATA, _config(**kw), tmp_path / "full")

    def crash(step):
        if step == 10:  # last checkpoint at step 8: steps 9 and 10 are lost and redone
            raise Crash

    with pytest.raises(Crash):
        run_search(space, digits, DATA, _config(**kw), tmp_path / "cut", on_step=crash)
    assert (tmp_path / "cut" / "checkpoint.pt").exists()
    assert len(_history(tmp_path / "cut")) == 20  # rows past the checkpoint are on disk...
    with pytest.raises(ConfigError, match="--resume"):
        run_search(space, digits, DATA, _config(**kw), tmp_path / "cut")
    resumed = run_search(space, digits, DATA, _config(**kw), tmp_path / "cut", resume=True)
    assert resumed["architecture"] == full["architecture"]
    assert resumed["supernet_val_accuracy"] == full["supernet_val_accuracy"]
    # ...and are replaced: the resumed history is the uninterrupted one, row for row.
    assert _history(tmp_path / "cut") == _history(tmp_path / "full")


def test_ctrl_c_checkpoints_the_step_and_resumes(tmp_path, digits, space):
    full = run_search(space, digits, DATA, _config(strategy="darts"), tmp_path / "full")

    def interrupt(step):
        if step == 6:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        run_search(space, digits, DATA, _config(strategy="darts"), tmp_path / "cut",
                   on_step=interrupt)
    assert len(_history(tmp_path / "cut")) == 7  # step 7 finished its round, then stopped
    resumed = run_search(space, digits, DATA, _config(strategy="darts"), tmp_path / "cut",
                         resume=True)
    assert resumed["architecture"] == full["architecture"]
    assert _history(tmp_path / "cut") == _history(tmp_path / "full")
    # A finished search resumes to itself.
    again = run_search(space, digits, DATA, _config(strategy="darts"), tmp_path / "cut",
                       resume=True)
    assert again == resumed


def test_resume_refuses_other_settings(tmp_path, digits, space):
    with pytest.raises(Crash):
        run_search(space, digits, DATA, _config(),
                   tmp_path / "r", on_step=lambda s: (_ for _ in ()).throw(Crash) if s == 4
                   else None)
    with pytest.raises(ConfigError, match="lr"):
        run_search(space, digits, DATA, _config(lr=0.01), tmp_path / "r", resume=True)
    # Nothing to resume: --resume starts the search (so a scheduled rerun needs no special case).
    s = run_search(space, digits, DATA, _config(budget=2), tmp_path / "empty", resume=True)
    assert s["search_steps"] == 2


@pytest.mark.parametrize("kw,match", [({"strategy": "evolution"}, "unknown strategy"),
                                      ({"budget": 0}, "budget")])
def test_bad_search_config(kw, match):
    with pytest.raises(ConfigError, match=match):
        SearchConfig(**kw)
    with pytest.raises(ConfigError, match="unknown search option 'budgett'"):
        SearchConfig.from_dict({"budgett": 3})


def test_config_from_plain_data():
    c = SearchConfig.from_dict({"budget": 7, "early_stop": {"tau": 0.8}})
    assert c.budget == 7 and c.early_stop.tau == 0.8 and c.early_stop.window == 50
    with pytest.raises(ConfigError, match="unknown early_stop option 'tua'"):
        SearchConfig.from_dict({"early_stop": {"tua": 0.8}})
    with pytest.raises(ConfigError, match="controller_steps must be a positive integer"):
        SearchConfig(controller_steps=0)


def test_fair_sampling_trains_every_candidate_once_per_cycle():
    space = SearchSpace.from_base("efficientnet_lite0", "medium", weights="none",
                                  num_classes=10)
    from archft.search import fair_architecture

    archs = [fair_architecture(space, 0, s) for s in range(18)]
    for t, d in enumerate(space.decisions):
        n = len(d.candidates)
        for cycle in range(18 // n):
            assert sorted(a[t] for a in archs[cycle * n:(cycle + 1) * n]) == list(range(n))
    assert archs == [fair_architecture(space, 0, s) for s in range(18)]  # a function of step
    assert archs != [fair_architecture(space, 1, s) for s in range(18)]


def test_warmup_trains_before_the_controller_learns(tmp_path, digits, space):
    s = run_search(space, digits, DATA, _config(budget=12, warmup=0.5), tmp_path / "w")
    history = _history(tmp_path / "w")
    assert s["warmup_steps"] == 6 and s["search_steps"] == 12
    assert [h["step"] for h in history] == [s for s in range(7, 13) for _ in range(2)]
    assert s["controller_updates"] == 12  # 6 rounds of 2 after the warm-up


def test_ranking_phase_fixes_the_supernet_and_holds_the_stop_back(tmp_path, digits, space):
    import torch
    from safetensors.torch import load_file

    # The last 6 of 12 steps train nothing: the supernet after them is the one after step 6.
    short = run_search(space, digits, DATA, _config(budget=6), tmp_path / "six")
    cfg = _config(ranking=0.5)
    s = run_search(space, digits, DATA, cfg, tmp_path / "rank")
    assert s["ranking_steps"] == 6 and s["search_steps"] == 12
    assert s["images_seen"] == short["images_seen"] == 6 * 64
    assert s["subnets_sampled"] == 6 + 24 and s["controller_updates"] == 24
    a, b = (load_file(str(tmp_path / d / "supernet.safetensors")) for d in ("six", "rank"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # Every step of the phase is a round of controller updates, each subnet scored once there
    # on the whole validation split: the same architecture earns the same reward.
    history = _history(tmp_path / "rank")
    assert [h["step"] for h in history] == [t for t in range(1, 13) for _ in range(2)]
    ranked = {}
    for h in history[10:]:
        assert ranked.setdefault(tuple(h["arch"]), h["reward"]) == h["reward"]
    assert s["ranking_subnets_scored"] == len(ranked) >= 1
    # One decision, in the tail's first step: no prefix to share (the medium scope's sharing:
    # test_prefix_sharing_rewards_are_the_plain_path_bit_for_bit); none without the phase.
    assert s["ranking_steps_shared"] == 0.0 and short["ranking_steps_shared"] is None
    # An early stop that would fire at step 5 without the phase judges only the phase's own
    # updates: 10 of them (min_updates; 2 per round) from step 10 on, so it fires at step 14.
    stop = EarlyStopConfig(tau=0.1, window=5, eps=10.0, min_updates=10, min_fraction=0)
    free = run_search(space, digits, DATA, _config(budget=20, early_stop=stop), tmp_path / "f")
    held = run_search(space, digits, DATA, _config(budget=20, early_stop=stop, ranking=0.5),
                      tmp_path / "h")
    assert free["early_stop_step"] == 5 and held["early_stop_step"] == 14
    assert held["stopped_early"] and held["search_steps"] == 14


def test_several_rollouts_and_the_best_scored_pick_of_the_ranking_phase(tmp_path, digits,
                                                                       space):
    stop = EarlyStopConfig(window=4, min_updates=4, eps=10.0, min_fraction=0, dry_run=True)
    cfg = _config(budget=16, ranking=0.5, controller_samples=3, final="best_scored",
                  early_stop=stop)
    s = run_search(space, digits, DATA, cfg, tmp_path / "best")
    # The small scope has one decision of 6 candidates: the phase (fixed from step 8) scores
    # each subnet once and lists them all, best first; the pick is the best of them.
    table = {tuple(b["architecture"]): b["reward"] for b in s["ranking_best"]}
    assert len(table) == s["ranking_subnets_scored"] <= 6
    assert list(table.values()) == sorted(table.values(), reverse=True)
    assert s["architecture"] == s["ranking_best"][0]["architecture"]
    phase = [h for h in _history(tmp_path / "best") if h["step"] >= 8]
    assert len(phase) == 18 and all(len(h["samples"]) == 3 for h in phase)
    # Each update's reward is the mean of its 3 rollouts' (not one rollout's); each row's pick
    # is the best of every rollout scored up to it (the first of equals).
    scored: dict[tuple, float] = {}
    for h in phase:
        rewards = [r for _, r in h["samples"]]
        assert h["reward"] == pytest.approx(sum(rewards) / 3)
        assert h["arch"] == h["samples"][0][0] and h["greedy"] is not None
        for arch, reward in h["samples"]:
            assert scored.setdefault(tuple(arch), reward) == reward  # scored once
        assert h["pick"] == list(max(scored, key=scored.__getitem__))
    assert any(len({tuple(a) for a, _ in h["samples"]}) > 1 for h in phase)
    assert {tuple(space.describe(a)): r for a, r in scored.items()} == table
    # The stop watches the pick: unchanged for 4 updates (and the plateau, loose here).
    assert s["early_stop_step"] is not None and s["architecture_at_stop"] in [
        b["architecture"] for b in s["ranking_best"]]
    with pytest.raises(ConfigError, match="controller_samples"):
        _config(controller_samples=0)
    with pytest.raises(ConfigError, match="needs a ranking phase"):
        _config(final="best_scored")
    with pytest.raises(ConfigError, match="unknown final"):
        _config(final="best")


@pytest.mark.parametrize("reward", ["neg_loss", "margin"])
def test_reward_kinds(tmp_path, digits, space, reward):
    s = run_search(space, digits, DATA, _config(budget=4, reward=reward, bn_recalibration=2),
                   tmp_path / reward)
    rewards = [h["reward"] for h in _history(tmp_path / reward)]
    assert len(rewards) == 8
    if reward == "neg_loss":
        assert all(r < 0 for r in rewards)
    else:
        assert all(-1 <= r <= 1 for r in rewards)
    assert s["config"]["reward"] == reward and 0 <= s["supernet_val_accuracy"] <= 1


def test_scores_and_bn_recalibration_leave_the_supernet_as_it_was(digits, space):
    import torch

    from archft.data.loaders import BatchTransform
    from archft.engine import ScopedEvaluator, recalibrated_bn, train_batches

    supernet = build_supernet(space)
    pre = space.spec.preprocessing
    tf = BatchTransform(32, pre.mean, pre.std)
    val = ScopedEvaluator(supernet, space.spec, space.trainable, digits.split_images("val"),
                          digits.labels("val"), tf, torch.device("cpu"))
    acc, loss, margin = (val.score(supernet, None, k) for k in ("accuracy", "neg_loss", "margin"))
    assert 0 <= acc <= 1 and loss < 0 and -1 <= margin <= 1
    batches = train_batches(supernet, space.spec, space.trainable, digits, tf, 32,
                            torch.device("cpu"), 0)
    inputs = [x for x, _ in itertools.islice(batches.stream(0), 3)]
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    with recalibrated_bn(supernet, inputs, batches.forward):
        bn = supernet.net.blocks[15].candidates[supernet.architecture[0]].dw.bn
        assert bn.num_batches_tracked.item() == 3 and bn.momentum is None
        assert not torch.equal(bn.running_mean, before[
            f"net.blocks.15.candidates.{supernet.architecture[0]}.dw.bn.running_mean"])
        recal_loss = val.score(supernet, None, "neg_loss")
    after = supernet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert recal_loss != loss and bn.momentum == 0.1


def test_dry_run_early_stop_records_the_stop_and_runs_the_budget(tmp_path, digits, space):
    cfg = _config(budget=20, early_stop=EarlyStopConfig(tau=0.1, window=5, eps=10.0,
                                                        min_updates=10, dry_run=True))
    s = run_search(space, digits, DATA, cfg, tmp_path / "dry")
    assert s["search_steps"] == 20 and not s["stopped_early"] and s["search_cost_saved"] == 0
    assert s["early_stop_step"] == 5 and s["early_stop_saving"] == pytest.approx(0.75)
    at_stop = s["architecture_at_stop"]
    assert len(at_stop) == 1 and at_stop[0] in space.decisions[0].candidates
    real = run_search(space, digits, DATA, dataclasses.replace(
        cfg, early_stop=dataclasses.replace(cfg.early_stop, dry_run=False)), tmp_path / "real")
    # A real early stop draws the same numbers up to the stop: the same step and architecture.
    assert real["stopped_early"] and real["early_stop_step"] == 5
    assert real["architecture"] == s["architecture_at_stop"]


@pytest.mark.parametrize("kw,match", [({"reward": "loss"}, "unknown reward"),
                                      ({"sampling": "uniform"}, "unknown sampling"),
                                      ({"warmup": 1.0}, "warmup"),
                                      ({"ranking": 1.0}, "ranking"),
                                      ({"ranking": 0.5, "warmup": 0.6}, "warmup \\+ ranking"),
                                      ({"bn_recalibration": -1}, "bn_recalibration")])
def test_bad_search_options(kw, match):
    with pytest.raises(ConfigError, match=match):
        SearchConfig(**kw)


@pytest.mark.parametrize("recal_batches,max_bytes", [(3, 1 << 30), (0, 1 << 30), (2, 1)])
def test_prefix_sharing_rewards_are_the_plain_path_bit_for_bit(digits, recal_batches, max_bytes):
    # The ranking phase's rewards with shared-prefix activations equal recalibrated_bn +
    # ScopedEvaluator.score exactly, draw the same random numbers (dropout in training mode)
    # and leave the supernet as it was; max_bytes=1 keeps nothing (no entry fits).
    import torch

    from archft.data.loaders import BatchTransform
    from archft.engine import ScopedEvaluator, recalibrated_bn, train_batches
    from archft.search.scoring import PrefixSharingScorer

    space = SearchSpace.from_base("efficientnet_lite0", "medium", weights="imagenet",
                                  num_classes=10)
    supernet = build_supernet(space)
    pre = space.spec.preprocessing
    tf = BatchTransform(32, pre.mean, pre.std)
    val = ScopedEvaluator(supernet, space.spec, space.trainable, digits.split_images("val"),
                          digits.labels("val"), tf, torch.device("cpu"), batch_size=64)
    batches = train_batches(supernet, space.spec, space.trainable, digits, tf, 32,
                            torch.device("cpu"), 0)
    inputs = [x for x, _ in itertools.islice(batches.stream(0), recal_batches)]
    scorer = PrefixSharingScorer(space, val, inputs, "neg_loss", max_bytes)
    # (At 32 px the kernel sizes are inert, the expansions not: these are 5 functions.)
    archs = [[0, 1, 2, 3, 4], [0, 1, 2, 3, 5], [0, 1, 3, 2, 5], [5, 1, 2, 3, 4], [0, 1, 2, 0, 0],
             [0, 1, 2, 3, 4]]
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    torch.manual_seed(0)
    plain = []
    for a in archs:
        supernet.set_architecture(a)
        with recalibrated_bn(supernet, inputs, batches.forward) if inputs else \
                contextlib.nullcontext():
            plain.append(val.score(supernet, None, "neg_loss"))
    rng = torch.get_rng_state()
    torch.manual_seed(0)
    shared = []
    for a in archs:
        supernet.set_architecture(a)
        shared.append(scorer.score(supernet))
    assert shared == plain, (shared, plain)
    assert len(set(plain)) == len(archs) - 1, plain
    assert torch.equal(torch.get_rng_state(), rng)
    after = supernet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not supernet.training
    # Shared: 3 of the 4 later subnets continue a cached prefix (the first has nothing to
    # share); with max_bytes=1 nothing is kept.
    assert (scorer.skipped > 0) == (max_bytes > 1) and scorer.bytes <= max_bytes
