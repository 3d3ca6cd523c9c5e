"""The model card: one HTML page a person reads to decide whether to trust and ship a run.

It holds what shipped and why, both models side by side (accuracy with the paired interval,
MAdds, parameters, onnxruntime latency), the base's and the searched architecture decision by
decision, the search's plots (heat map, Pareto view) inline, and where the data came from
(fingerprint, DVC hash). Self-contained: images are embedded, so the page renders in the
ZenML dashboard and anywhere else it is copied to.
"""

from __future__ import annotations

import base64
import html
from typing import Sequence


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _m(v: float | None, unit: str = "M") -> str:
    return "-" if v is None else f"{v / 1e6:.2f} {unit}"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} ms"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _models(e: dict) -> str:
    rows = []
    for kind, prefix in (("two-stage", "two_stage"), ("vanilla", "vanilla")):
        if e.get(f"{prefix}_test_accuracy") is None:
            continue
        mark = " <b>(shipped)</b>" if e.get("shipped") == kind else ""
        rows.append([f"{kind}{mark}", _pct(e.get(f"{prefix}_val_accuracy")),
                     _pct(e.get(f"{prefix}_test_accuracy")), _m(e.get(f"{prefix}_madds")),
                     _m(e.get(f"{prefix}_scope_madds")), _m(e.get(f"{prefix}_params"), "M"),
                     _ms(e.get(f"{prefix}_onnxruntime_batch1_ms"))])
    return _table(["model", "val accuracy", "test accuracy", "MAdds", "MAdds in the scope",
                   "params", "onnxruntime batch 1"], rows)


def _gain(e: dict) -> str:
    if e.get("gain_over_vanilla") is None:
        return "<p>No vanilla baseline was run.</p>"
    ci = e.get("gain_over_vanilla_ci95")
    interval = (f", 95% CI {100 * ci[0]:+.2f}..{100 * ci[1]:+.2f} points (McNemar p "
                f"{e['gain_over_vanilla_p']:.2g})" if ci else "")
    madds = ""
    if e.get("two_stage_madds") and e.get("vanilla_madds"):
        madds = (f"; MAdds {e['two_stage_madds'] / e['vanilla_madds']:.2f}x vanilla's, "
                 f"{e['two_stage_scope_madds'] / e['vanilla_scope_madds']:.2f}x in the scope")
    return (f"<p>Two-stage minus vanilla on the {e['test_images']} test images: "
            f"{100 * e['gain_over_vanilla']:+.2f} points{interval}{madds}. The interval is the "
            "test set's noise; a fine-tuning seed moves accuracy too.</p>")


def _architecture(arch: dict) -> str:
    rows = []
    for d in arch["decisions"]:
        base = d.get("base")
        changed = base is not None and d["choice"] != base
        choice = f"<b>{html.escape(d['choice'])}</b>" if changed else html.escape(d["choice"])
        rows.append([f"<code>{html.escape(d['layer'])}</code>", html.escape(str(base)), choice,
                     html.escape(" | ".join(d["candidates"]))])
    return _table(["layer", "base", "searched", "candidates"], rows)


def _image(title: str, png: bytes) -> str:
    data = base64.b64encode(png).decode()
    return (f"<figure><img alt='{html.escape(title)}' style='max-width:100%' "
            f"src='data:image/png;base64,{data}'><figcaption>{html.escape(title)}</figcaption>"
            "</figure>")


STYLE = ("<style>.archft-card{font-family:sans-serif;max-width:60em}.archft-card table"
         "{border-collapse:collapse;margin:0.5em 0}.archft-card td,.archft-card th{border:1px "
         "solid #ccc;padding:4px 8px;text-align:left}.archft-card .ship{background:#e6f4ea;"
         "padding:0.5em}</style>")


def render_card(evaluation: dict, architecture: dict, base_choices: dict[str, str | None],
                plots: dict[str, bytes]) -> str:
    """The model card's HTML.

    Args:
        evaluation: the pipeline's evaluation (`rundirs.EVALUATION_METRICS` and more).
        architecture: the search's `architecture.json`.
        base_choices: layer -> the base's own candidate (None where it is not in the space).
        plots: caption -> PNG bytes (the heat map, the Pareto view).

    Returns:
        One self-contained HTML fragment.
    """
    e = evaluation
    arch = {**architecture, "decisions": [{**d, "base": base_choices.get(d["layer"])}
                                          for d in architecture["decisions"]]}
    parts = [
        STYLE, "<div class='archft-card'>",
        f"<h2>archft model card: {html.escape(str(e.get('base')))} / "
        f"{html.escape(str(e.get('scope')))} on {html.escape(str(e.get('dataset')))}</h2>",
        f"<p class='ship'><b>Shipped: {html.escape(str(e.get('shipped')))}</b>, "
        f"{_pct(e.get('onnx_test_accuracy'))} test accuracy in onnxruntime, "
        f"{_m(e.get('madds'))} MAdds, {_m(e.get('params'))} params, "
        f"{_ms(e.get('onnxruntime_batch1_ms'))} at batch 1. "
        f"Why: {html.escape(str(e.get('shipped_reason')))}.</p>",
        "<h3>Both models</h3>", _models(e), _gain(e),
        "<h3>Architecture</h3>",
        f"<p>{html.escape(str(e.get('strategy')))} search over {e.get('num_subnets', 0):,} "
        f"subnets; cost weight {e.get('search_cost_weight', 0):g}; "
        f"{e.get('search_steps')} of {e.get('search_budget')} supernet steps"
        + (f", early-stopped at step {e['early_stop_step']}" if e.get("early_stop_step")
           else "") + ". Changed decisions in bold.</p>",
        _architecture(arch),
        *(_image(title, png) for title, png in plots.items()),
        "<h3>Data</h3>",
        _table(["dataset", "fingerprint", "DVC hash", "test images"],
               [[html.escape(str(e.get("dataset"))),
                 f"<code>{html.escape(str(e.get('dataset_fingerprint')))}</code>",
                 f"<code>{html.escape(str(e.get('dvc_hash')))}</code>",
                 str(e.get("test_images"))]]),
        "</div>",
    ]
    return "".join(parts)
