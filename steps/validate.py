"""Step `validate`: a Great Expectations suite on the manifest; failure stops the pipeline."""

from __future__ import annotations

import html
import os
from typing import Annotated

import pandas as pd
from zenml import log_metadata, save_artifact, step
from zenml.types import HTMLString

from archft.core.errors import DataError
from archft.data import Dataset

SPLIT_COLUMNS = ("train", "val", "test")


class ValidationFailed(DataError):
    """The dataset failed its expectations (named in the message)."""


def _expectations(classes: list[str], min_train: int, min_eval: int, min_side: int,
                  channels: list[int]) -> dict[str, list]:
    import great_expectations as gx

    e = gx.expectations
    return {
        "manifest": [
            e.ExpectTableRowCountToBeBetween(min_value=1),
            e.ExpectColumnValuesToNotBeNull(column="path"),
            e.ExpectColumnValuesToNotBeNull(column="sha256"),
            e.ExpectColumnValuesToBeInSet(column="class", value_set=classes),
            e.ExpectColumnValuesToBeBetween(column="label", min_value=0,
                                            max_value=len(classes) - 1),
            e.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLIT_COLUMNS)),
            e.ExpectColumnValuesToBeInSet(column="exists", value_set=[True]),
            e.ExpectColumnValuesToBeInSet(column="readable", value_set=[True]),
            e.ExpectColumnValuesToBeBetween(column="width", min_value=min_side),
            e.ExpectColumnValuesToBeBetween(column="height", min_value=min_side),
            e.ExpectColumnValuesToBeInSet(column="channels", value_set=channels),
            # Leakage: an image (by content) that sits in two splits.
            e.ExpectColumnValuesToBeInSet(column="splits_with_this_image", value_set=[1]),
        ],
        "classes": [
            e.ExpectColumnValuesToBeBetween(column="train", min_value=min_train),
            e.ExpectColumnValuesToBeBetween(column="val", min_value=min_eval),
            e.ExpectColumnValuesToBeBetween(column="test", min_value=min_eval),
        ],
    }


def tables(manifest: pd.DataFrame, root: str, classes: list[str]) -> dict[str, pd.DataFrame]:
    """The manifest with the derived columns the suite checks, and images per class and split."""
    m = manifest.copy()
    m["exists"] = [(":" in p and not root) or os.path.isfile(os.path.join(root, p))
                   for p in m["path"]]
    m["splits_with_this_image"] = m.groupby("sha256")["split"].transform("nunique")
    for col in ("width", "height", "channels"):  # unreadable files are reported once, above
        m[col] = m[col].where(m["readable"])
    ok = m[m["readable"]]
    counts = pd.crosstab(ok["class"], ok["split"]).reindex(index=classes, columns=SPLIT_COLUMNS,
                                                           fill_value=0)
    counts = counts.fillna(0).astype(int).rename_axis(None, axis=1).reset_index(names="class")
    return {"manifest": m, "classes": counts}


def run_suite(frames: dict[str, pd.DataFrame], expectations: dict[str, list]) -> list[dict]:
    """Validates each frame with real Great Expectations; one result row per expectation."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # Its per-metric bars would interleave with the step log; the report says what ran.
    context.variables.progress_bars = ProgressBarsConfig(globally=False,
                                                         metric_calculations=False)
    source = context.data_sources.add_pandas("archft")
    rows = []
    for name, frame in frames.items():
        batch = (source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
                 .get_batch(batch_parameters={"dataframe": frame}))
        suite = gx.ExpectationSuite(name=f"archft_{name}", expectations=expectations[name])
        key = "path" if name == "manifest" else "class"
        result = batch.validate(suite, result_format={"result_format": "COMPLETE",
                                                      "unexpected_index_column_names": [key]})
        for r in result.results:
            cfg = r.expectation_config
            column = cfg.kwargs.get("column")
            bad = [str(v.get(key)) for v in (r.result.get("unexpected_index_list") or [])]
            unexpected = r.result.get("unexpected_count", 0 if r.success else 1)
            rows.append({"table": name, "expectation": f"{cfg.type}({column or ''})",
                         "success": bool(r.success), "unexpected": unexpected,
                         "observed": r.result.get("observed_value"), "examples": bad[:5],
                         "kwargs": {k: v for k, v in cfg.kwargs.items()
                                    if k not in ("column", "batch_id")}})
    return rows


def render(rows: list[dict], source: str) -> str:
    """The results as an HTML table (shown in the dashboard)."""
    failed = sum(not r["success"] for r in rows)
    head = (f"<h3>Data validation of {html.escape(source)}: "
            f"{'passed' if not failed else f'{failed} expectation(s) failed'}</h3>")
    body = "".join(
        f"<tr style='background:{'#e6f4ea' if r['success'] else '#fce8e6'}'>"
        f"<td>{'pass' if r['success'] else 'FAIL'}</td><td>{r['table']}</td>"
        f"<td><code>{html.escape(r['expectation'])}</code></td>"
        f"<td>{html.escape(str(r['kwargs']))}</td><td>{r['unexpected'] or ''}</td>"
        f"<td>{html.escape(', '.join(r['examples']))}</td></tr>" for r in rows)
    return (f"{head}<table border=1 cellpadding=4 style='border-collapse:collapse'><tr>"
            "<th>result</th><th>table</th><th>expectation</th><th>arguments</th>"
            f"<th>unexpected</th><th>examples</th></tr>{body}</table>")


@step
def validate(dataset: Dataset, manifest: pd.DataFrame, min_train_images_per_class: int = 10,
             min_eval_images_per_class: int = 1, min_image_side: int = 8,
             channels: list[int] | None = None) -> tuple[
        Annotated[dict, "validation"], Annotated[HTMLString, "validation_report"]]:
    """Checks the manifest: labels in the class set, enough images per class and split, image
    sizes and channels, every file present and decodable, no image in two splits.

    Args:
        dataset: from `ingest`.
        manifest: from `ingest`.
        min_train_images_per_class: fewest training images a class may have.
        min_eval_images_per_class: fewest validation and test images a class may have.
        min_image_side: smallest width or height of an image file.
        channels: allowed channel counts (default 1, 3 and 4: grey, RGB, RGBA).

    Raises:
        ValidationFailed: naming each failing expectation and example files; the report is
            saved as the artifact `validation_report` first.
    """
    frames = tables(manifest, dataset.root, dataset.classes)
    rows = run_suite(frames, _expectations(dataset.classes, min_train_images_per_class,
                                           min_eval_images_per_class, min_image_side,
                                           list(channels or (1, 3, 4))))
    report = HTMLString(render(rows, dataset.name))
    failed = [r for r in rows if not r["success"]]
    summary = {"success": not failed, "expectations": len(rows), "failed": len(failed),
               "fingerprint": dataset.fingerprint(),
               "failures": [f"{r['expectation']}: {r['unexpected']} unexpected"
                            + (f" ({', '.join(r['examples'])})" if r["examples"] else "")
                            for r in failed]}
    log_metadata({k: v for k, v in summary.items() if k != "fingerprint"})
    if failed:
        save_artifact(report, name="validation_report")
        raise ValidationFailed(f"{dataset.name} failed validation: "
                               + "; ".join(summary["failures"]))
    return summary, report
