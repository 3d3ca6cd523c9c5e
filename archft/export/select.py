"""Which model ships: the two-stage model or its own vanilla baseline, chosen on validation.

The pipeline trains both on the same data, scope and budget. It ships the one that is better
on the validation split (the test split stays for reporting), where "better" must be more than
the noise of that split: the paired test of their per-image correctness (`paired_test`, the
same images in the same order) gives the difference's 95% interval. An interval that excludes
zero names the winner; one that includes it is a tie, and a tie goes to the model with fewer
multiply-adds (then fewer parameters; then vanilla, the simpler one). So a search that found a
cheaper architecture of the same accuracy ships it, and one whose pick is measurably worse
ships vanilla.
"""

from __future__ import annotations

from archft.export.compare import paired_test

KINDS = ("two-stage", "vanilla")


def _cost_key(metrics: dict) -> tuple:
    return (metrics.get("madds", float("inf")), metrics.get("params", float("inf")))


def choose_model(two_stage: dict, vanilla: dict) -> dict:
    """The shipping decision between two models' metrics (`metrics.json`).

    Args:
        two_stage: the searched model's metrics (`val_accuracy`, `val_correct`, `madds`,
            `params`).
        vanilla: the baseline's.

    Returns:
        `chosen` ("two-stage" or "vanilla"), `reason` (one sentence), `tie` (whether the
        validation difference was within its noise), `val_difference` (two-stage - vanilla),
        `val_ci95` and `val_p` (None without per-image results).
    """
    diff = two_stage["val_accuracy"] - vanilla["val_accuracy"]
    ci, p = None, None
    a, b = two_stage.get("val_correct"), vanilla.get("val_correct")
    if a and b and len(a) == len(b):
        paired = paired_test(a, b)
        ci, p, diff = paired["ci95"], paired["mcnemar_p"], paired["difference"]
        tie = ci[0] <= 0 <= ci[1]
    else:  # no per-image results (older metrics): only an exact tie is a tie
        tie = diff == 0
    pts = f"{100 * diff:+.2f} points"
    noise = (f" (95% CI {100 * ci[0]:+.2f}..{100 * ci[1]:+.2f})" if ci is not None else "")
    if not tie:
        chosen = "two-stage" if diff > 0 else "vanilla"
        reason = (f"{chosen} is better on validation: two-stage - vanilla {pts}{noise}, "
                  "outside the noise")
    else:
        ts, va = _cost_key(two_stage), _cost_key(vanilla)
        chosen = "two-stage" if ts < va else "vanilla"
        why = (f"{chosen} is the cheaper" if ts != va else "equal cost: vanilla, the simpler")
        costs = (f"two-stage {two_stage.get('madds', 0) / 1e6:.1f} M, vanilla "
                 f"{vanilla.get('madds', 0) / 1e6:.1f} M MAdds")
        reason = f"a tie on validation (two-stage - vanilla {pts}{noise}); {why} ({costs})"
    return {"chosen": chosen, "reason": reason, "tie": tie, "val_difference": diff,
            "val_ci95": ci, "val_p": p}
