"""The Pareto view of a search: every scored subnet's task reward against its multiply-adds.

A subnet is on the front when no other scored subnet has at least its reward at no more MAdds,
better in one of the two. Rewards taken on the whole validation split of the fixed supernet (a
ranking phase) are preferred; a search without one contributes the mean of each subnet's
rewards on the validation samples it was scored on while the supernet trained (noisier: the
points say which kind they are).
"""

from __future__ import annotations

from typing import Callable, Sequence

from archft.nas.cost import CostTable
from archft.space import SearchSpace


def front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For (reward, madds) points, whether each is non-dominated (higher reward and lower
    MAdds are better); equal points are all on the front."""
    out = []
    for r, m in points:
        out.append(not any((r2 >= r and m2 <= m) and (r2 > r or m2 < m) for r2, m2 in points))
    return out


def pareto_points(space: SearchSpace, costs: CostTable, ranked: dict[tuple, float],
                  sampled: dict[tuple, list[float]],
                  objective: Callable[[tuple, float], float]) -> list[dict]:
    """One row per scored subnet: architecture (candidate names), task reward, objective,
    MAdds, params, scope MAdds, how it was scored ("fixed": whole validation split of the
    fixed supernet; "sampled": mean over validation samples) and whether it is on the front.

    Args:
        space: the search space.
        costs: its cost table at the search's input size.
        ranked: architecture -> task reward on the fixed supernet.
        sampled: architecture -> [sum of task rewards, count] while the supernet trained.
        objective: (architecture, task reward) -> the search's objective.
    """
    rewards = ({a: (r, "fixed") for a, r in ranked.items()} if ranked else
               {a: (t / n, "sampled") for a, (t, n) in sampled.items() if n})
    rows = []
    for arch, (reward, how) in rewards.items():
        cost = costs.of(arch)
        rows.append({"architecture": space.describe(arch), "reward": reward,
                     "objective": objective(arch, reward), **cost, "scored": how})
    for row, on in zip(rows, front([(r["reward"], r["madds"]) for r in rows])):
        row["front"] = on
    return sorted(rows, key=lambda r: r["madds"])
