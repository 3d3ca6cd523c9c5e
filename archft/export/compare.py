"""Two fine-tuned models side by side (seed 000, 4.2: "85% with 4.6e4 iterations, where vanilla
reaches it with 6.8e4: 67.6% of the computing cost")."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

from archft.core import rundirs
from archft.core.errors import ConfigError
from archft.core.io import atomic_write_json, atomic_write_text


def _metrics(model_dir: str | Path) -> dict:
    path = Path(model_dir) / rundirs.MODEL.metrics
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no metrics.json in {model_dir}: not a model directory") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON ({e.msg})") from None
    if not isinstance(data, dict) or not data.get("curve"):
        raise ConfigError(f"{path} has no accuracy curve")
    return data


def steps_to_reach(curve: list[dict], target: float, key: str = "test_accuracy") -> int | None:
    """First curve step whose accuracy is >= target (None if never)."""
    for point in curve:
        if point.get(key) is not None and point[key] >= target:
            return point["step"]
    return None


def paired_test(correct_a: Sequence[int], correct_b: Sequence[int]) -> dict:
    """How sure is "A is more accurate than B" on one test set? Both models' per-image
    correctness on the same images (`test_correct` of a model's metrics.json) gives the
    difference of accuracies, its 95% interval (Wald, paired: only images exactly one model gets
    right move it) and McNemar's exact two-sided p (a binomial test on those images).

    This is the test set's sampling noise only. A fine-tuning's seed moves accuracy too (about a
    point on the benchmark tasks, docs/BENCHMARKS.md), which one pair of models cannot show.

    Args:
        correct_a: 1 where model A's top-1 is right, image by image.
        correct_b: the same for model B, same images in the same order.

    Returns:
        images, a_only (A right, B wrong), b_only, difference (A - B accuracy), ci95 [low,
        high], mcnemar_p.
    """
    if len(correct_a) != len(correct_b) or not len(correct_a):
        raise ConfigError(f"paired test: {len(correct_a)} and {len(correct_b)} test images; "
                          "a paired test needs the same, non-empty test set")
    n = len(correct_a)
    a_only = sum(1 for x, y in zip(correct_a, correct_b) if x and not y)
    b_only = sum(1 for x, y in zip(correct_a, correct_b) if y and not x)
    diff = (a_only - b_only) / n
    half = 1.959964 * math.sqrt(max(a_only + b_only - (a_only - b_only) ** 2 / n, 0.0)) / n
    m, low = a_only + b_only, min(a_only, b_only)
    if m <= 10_000:  # exact: P(X <= low) doubled, X ~ Binomial(m, 1/2), in integers
        p = min(1.0, 2 * sum(math.comb(m, k) for k in range(low + 1)) / 2 ** m)
    else:  # the normal approximation with continuity correction (exact is slow, and as good)
        p = min(1.0, math.erfc((abs(a_only - b_only) - 1) / math.sqrt(2 * m)))
    return {"images": n, "a_only": a_only, "b_only": b_only, "difference": diff,
            "ci95": [diff - half, diff + half], "mcnemar_p": p}


def paired_summary(ci95: Sequence[float], p: float, images: int) -> str:
    """`95% CI -0.39..+1.72 points on these 1200 test images, McNemar p 0.22` (`paired_test`'s
    figures)."""
    low, high = (100 * v for v in ci95)
    return (f"95% CI {low:+.2f}..{high:+.2f} points on these {images} test images, McNemar p "
            f"{p:.2g}")


def compare(model_a: str | Path, model_b: str | Path, target: float | None = None,
            key: str = "test_accuracy") -> dict:
    """Final accuracy, iterations to a target accuracy and their ratio (A's cost relative to B).

    Args:
        model_a: model directory (typically the two-stage model).
        model_b: model directory (typically the vanilla baseline).
        target: accuracy both are measured against; default: the lower of the two final
            accuracies, which both runs reach.
        key: curve entry compared ("test_accuracy" as in the paper, or "val_accuracy").

    Returns:
        The comparison.
    """
    a, b = _metrics(model_a), _metrics(model_b)
    if target is None:
        target = min(a[key], b[key])
    sa, sb = steps_to_reach(a["curve"], target, key), steps_to_reach(b["curve"], target, key)
    rows = []
    for name, m, s in (("A", a, sa), ("B", b, sb)):
        rows.append({"run": name, "dir": str(model_a if name == "A" else model_b),
                     "kind": m.get("kind"), "architecture": m.get("architecture"),
                     "final": m[key], "steps_to_target": s,
                     "finetune_steps": m.get("finetune_steps"),
                     "finetune_seconds": m.get("finetune_seconds")})
    paired = None
    if (key == "test_accuracy" and a.get("test_correct") and b.get("test_correct")
            and len(a["test_correct"]) == len(b["test_correct"])
            and a.get("dataset_fingerprint") == b.get("dataset_fingerprint") is not None):
        paired = paired_test(a["test_correct"], b["test_correct"])
    return {"metric": key, "target": target, "runs": rows,
            "compute_ratio": (sa / sb) if sa and sb else None,
            "final_difference": a[key] - b[key], "paired_test": paired}


def render(result: dict) -> str:
    """The comparison as a Markdown table."""
    lines = [f"| run | kind | final {result['metric']} | steps to {100 * result['target']:.2f}% "
             "| steps | wall s |", "| --- | --- | --- | --- | --- | --- |"]
    for r in result["runs"]:
        lines.append(f"| {r['run']}: {r['dir']} | {r['kind']} | {100 * r['final']:.2f}% | "
                     f"{r['steps_to_target'] if r['steps_to_target'] is not None else 'never'} | "
                     f"{r['finetune_steps']} | {r['finetune_seconds']} |")
    ratio = result["compute_ratio"]
    lines.append("")
    lines.append(f"compute ratio A/B to reach the target: "
                 f"{f'{100 * ratio:.1f}%' if ratio is not None else 'n/a'}; "
                 f"final difference A-B: {100 * result['final_difference']:+.2f} points"
                 + (f" ({paired_summary(t['ci95'], t['mcnemar_p'], t['images'])})"
                    if (t := result.get("paired_test")) else ""))
    return "\n".join(lines) + "\n"


def write(result: dict, out: str | Path) -> None:
    """Writes `compare.json` and `compare.md` into `out`."""
    out = Path(out)
    atomic_write_json(out / rundirs.RESULTS.compare_json, result)
    atomic_write_text(out / rundirs.RESULTS.compare_md, render(result))
