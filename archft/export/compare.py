"""Two fine-tuned models side by side (seed 000, 4.2: "85% with 4.6e4 iterations, where vanilla
reaches it with 6.8e4: 67.6% of the computing cost")."""

from __future__ import annotations

import json
from pathlib import Path

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
    return {"metric": key, "target": target, "runs": rows,
            "compute_ratio": (sa / sb) if sa and sb else None,
            "final_difference": a[key] - b[key]}


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
                 f"final difference A-B: {100 * result['final_difference']:+.2f} points")
    return "\n".join(lines) + "\n"


def write(result: dict, out: str | Path) -> None:
    """Writes `compare.json` and `compare.md` into `out`."""
    out = Path(out)
    atomic_write_json(out / rundirs.RESULTS.compare_json, result)
    atomic_write_text(out / rundirs.RESULTS.compare_md, render(result))
