"""PNG plots a person can look at: the action heat map (seed 000, Fig. 4), reward and accuracy
curves."""

from __future__ import annotations

import os
from io import BytesIO
from typing import Sequence

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from archft.core.io import atomic_write_bytes  # noqa: E402


def _save(fig, path: str | os.PathLike) -> None:
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def action_heatmap(history: Sequence[dict], layers: Sequence[str],
                   candidates: Sequence[Sequence[str]], path: str | os.PathLike,
                   stop_step: int | None = None, title: str = "") -> None:
    """Decisions x time heat map of p(choice), with the reward curve beneath.

    Binary decisions get one row, p(second candidate) (white ~ 0, black ~ 1, as in the paper);
    decisions with more candidates get one row per candidate.

    Args:
        history: controller updates, each with "step", "reward" and "probs".
        layers: decision layer names.
        candidates: candidate names per decision.
        path: PNG destination.
        stop_step: search step where early stopping fired, marked on both panels.
        title: figure title.
    """
    rows, labels = [], []
    for t, (layer, cands) in enumerate(zip(layers, candidates)):
        picks = [1] if len(cands) == 2 else range(len(cands))
        for c in picks:
            rows.append([h["probs"][t][c] for h in history])
            labels.append(f"{layer}: {cands[c]}")
    steps = [h["step"] for h in history]
    rewards = np.array([h["reward"] for h in history], dtype=float)
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(10, 2.2 + 0.22 * len(rows)), sharex=True,
                                 gridspec_kw={"height_ratios": [max(len(rows), 3) / 3, 1]})
    extent = (steps[0], steps[-1], len(rows) - 0.5, -0.5) if steps else None
    im = ax.imshow(np.array(rows) if rows and steps else np.zeros((1, 1)), aspect="auto",
                   cmap="gray_r", vmin=0, vmax=1, interpolation="nearest", extent=extent)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_title(title or "controller action distribution p(choice)")
    fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01)
    if len(rewards):
        span = rewards.max() - rewards.min()
        rel = (rewards - rewards.min()) / span if span > 0 else np.zeros_like(rewards)
        k = min(10, len(rel))
        smooth = np.convolve(rel, np.ones(k) / k, mode="valid")
        bx.plot(steps, rel, color="0.75", lw=0.8, label="reward (relative)")
        bx.plot(steps[k - 1:], smooth, color="C0", lw=1.5, label=f"moving mean ({k})")
    if stop_step is not None:
        for a in (ax, bx):
            a.axvline(stop_step, color="C3", ls="--", lw=1)
        bx.text(stop_step, 1.02, " early stop", color="C3", fontsize=8, va="bottom")
    bx.set_ylim(-0.05, 1.1)
    bx.set_xlabel("supernet training step")
    bx.set_ylabel("relative reward")
    bx.legend(loc="lower right", fontsize=7)
    _save(fig, path)


def accuracy_curve(curves: dict[str, tuple[Sequence[int], Sequence[float]]],
                   path: str | os.PathLike, title: str = "") -> None:
    """Accuracy against iterations, one line per named curve."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, (xs, ys) in curves.items():
        ax.plot(xs, [100 * y for y in ys], marker="o", ms=2, label=name)
    ax.set_xlabel("iteration")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    _save(fig, path)


def reward_curve(history: Sequence[dict], path: str | os.PathLike,
                 stop_step: int | None = None, title: str = "") -> None:
    """Reward (validation accuracy of each sampled subnet), its moving mean and the REINFORCE
    baseline against supernet steps, with the early stop marked."""
    steps = np.array([h["step"] for h in history])
    rewards = 100 * np.array([h["reward"] for h in history], dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, rewards, color="0.7", lw=0.8, label="reward")
    k = min(20, len(rewards))
    if k:
        ax.plot(steps[k - 1:], np.convolve(rewards, np.ones(k) / k, mode="valid"), color="C0",
                lw=1.5, label=f"moving mean ({k})")
    baseline = [(h["step"], 100 * h["baseline"]) for h in history if h.get("baseline") is not None]
    if baseline:
        ax.plot(*zip(*baseline), color="C2", lw=1, ls=":", label="baseline")
    if stop_step is not None:
        ax.axvline(stop_step, color="C3", ls="--", lw=1, label="early stop")
    ax.set_xlabel("supernet training step")
    ax.set_ylabel("validation accuracy of sampled subnet (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    _save(fig, path)


def pareto_plot(points: Sequence[dict], path: str | os.PathLike, base: dict | None = None,
                pick: dict | None = None, title: str = "", reward_name: str = "reward") -> None:
    """Task reward against MAdds of every scored subnet, the Pareto front joined, the base
    and the pick marked.

    Args:
        points: rows with "reward", "madds" and "front" (`archft.search.pareto`).
        path: PNG destination.
        base: the base architecture's {"madds", and "reward" if it was scored}.
        pick: the search's pick, the same fields.
        title: figure title.
        reward_name: what the reward is, for the axis label.
    """
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if points:
        ms = np.array([p["madds"] for p in points], dtype=float) / 1e6
        rs = np.array([p["reward"] for p in points], dtype=float)
        ax.scatter(ms, rs, s=12, color="0.6", label=f"scored subnets ({len(points)})")
        on = sorted((p["madds"] / 1e6, p["reward"]) for p in points if p.get("front"))
        if on:
            ax.plot(*zip(*on), color="C0", lw=1.5, marker="o", ms=4, label="Pareto front")
    for mark, what, colour, shape in ((base, "base", "C2", "s"), (pick, "pick", "C3", "*")):
        if mark is None:
            continue
        if mark.get("reward") is not None:
            ax.scatter([mark["madds"] / 1e6], [mark["reward"]], s=140 if shape == "*" else 70,
                       color=colour, marker=shape, zorder=5, label=what)
        else:
            ax.axvline(mark["madds"] / 1e6, color=colour, ls="--", lw=1, label=f"{what} (MAdds)")
    ax.set_xlabel("multiply-adds (M)")
    ax.set_ylabel(f"validation {reward_name}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title or "search: reward against cost")
    _save(fig, path)
