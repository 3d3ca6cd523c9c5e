import itertools
import math

import pytest
import torch

from archft.search.controller import (
    Controller,
    discounted_returns,
    leave_one_out_baselines,
    reinforce_loss,
    update_baseline,
)


def test_sample_logprob_entropy_are_consistent():
    torch.manual_seed(0)
    c = Controller([3, 2, 4])
    g = torch.Generator().manual_seed(1)
    arch, log_prob, entropy = c.sample(g)
    assert len(arch) == 3 and all(0 <= a < n for a, n in zip(arch, [3, 2, 4]))
    # Scoring the sampled architecture gives back its log-probability.
    torch.testing.assert_close(c.rollout(arch=arch).log_prob, log_prob)
    r = c.rollout(arch=arch)
    expected = sum(float(-(p * p.log()).sum()) for p in r.probs)
    assert math.isclose(float(entropy), expected, rel_tol=1e-5)
    # The policy is a distribution over the whole space.
    total = sum(float(c.rollout(arch=list(a)).log_prob.exp())
                for a in itertools.product(range(3), range(2), range(4)))
    assert math.isclose(total, 1.0, rel_tol=1e-5)


def test_greedy_follows_the_most_likely_candidates():
    torch.manual_seed(0)
    c = Controller([2, 3, 2])
    r = c.rollout(greedy=True)
    assert r.arch == [int(p.argmax()) for p in r.probs] == c.argmax()
    assert [len(p) for p in c.probabilities()] == [2, 3, 2]


def test_sampling_is_reproducible_with_a_generator():
    c = Controller([6, 6])
    a = [c.sample(torch.Generator().manual_seed(s))[0] for s in range(5)]
    b = [c.sample(torch.Generator().manual_seed(s))[0] for s in range(5)]
    assert a == b


def test_reinforce_raises_probability_of_the_rewarded_architecture():
    torch.manual_seed(0)
    c = Controller([2, 3, 2])
    opt = torch.optim.Adam(c.parameters(), lr=3e-3)
    good = [1, 2, 0]
    p0 = float(c.rollout(arch=good).log_prob.exp())
    g, baseline = torch.Generator().manual_seed(0), None
    for _ in range(300):
        r = c.rollout(generator=g)
        reward = 1.0 if r.arch == good else 0.0
        loss = reinforce_loss(r.log_probs, r.entropies, reward,
                              reward if baseline is None else baseline)
        opt.zero_grad()
        loss.backward()
        opt.step()
        baseline = update_baseline(baseline, reward, 0.9)
    p1 = float(c.rollout(arch=good).log_prob.exp())
    assert p1 > p0 + 0.3 and c.argmax() == good


def test_reinforce_loss_gradient_direction_and_discount():
    logits = torch.zeros(2, requires_grad=True)
    log_probs = torch.log_softmax(logits, 0)[[1]]
    loss = reinforce_loss(log_probs, torch.zeros(1), reward=1.0, baseline=0.5,
                          entropy_weight=0.0)
    loss.backward()
    assert logits.grad[1] < 0 < logits.grad[0]  # descending the loss raises p(action 1)
    r = discounted_returns(torch.tensor([0.0, 0.0, 1.0]), 0.5)
    torch.testing.assert_close(r, torch.tensor([0.25, 0.5, 1.0]))
    assert update_baseline(None, 0.7, 0.9) == 0.7
    assert math.isclose(update_baseline(0.5, 1.0, 0.9), 0.55)


def test_leave_one_out_baselines_and_a_batched_update_find_the_best_architecture():
    assert leave_one_out_baselines([1.0, 0.0, 0.5]) == [0.25, 0.75, 0.5]
    with pytest.raises(ValueError, match="at least two"):
        leave_one_out_baselines([1.0])
    # A fixed reward table whose candidates differ by a few hundredths, as subnets on a fixed
    # supernet do: four rollouts per update, each against the mean of the other three.
    effects = torch.tensor([[0.00, 0.03, 0.01], [0.02, 0.00, 0.04], [0.01, 0.00, 0.00]])
    best = [int(e.argmax()) for e in effects]
    torch.manual_seed(0)
    c = Controller([3, 3, 3])
    opt = torch.optim.Adam(c.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(100):
        rolls = [c.rollout(generator=g) for _ in range(4)]
        rewards = [float(sum(effects[t, a] for t, a in enumerate(r.arch))) for r in rolls]
        loss = sum(reinforce_loss(r.log_probs, r.entropies, x, b) for r, x, b in
                   zip(rolls, rewards, leave_one_out_baselines(rewards))) / 4
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert c.argmax() == best
    assert min(float(p.max()) for p in c.rollout(greedy=True).probs) > 0.5
