"""Runs the `architectural_finetuning` pipeline on the active ZenML stack.

    python run.py --config configs/default.yaml [--no-cache] [--results DIR]
    python run.py --config configs/kubeflow.yaml --compile-only pipeline.yaml

The config is a ZenML run configuration (parameters, model, settings); its `parameters` are
checked here first so that a typo fails in a second with one line naming the file and field.
When the run finishes, its key outputs are copied to `--results` (default runs/<config name>).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")

from archft.cli import threads_arg  # noqa: E402
from archft.core import rundirs  # noqa: E402
from archft.core.errors import ArchftError, ConfigError  # noqa: E402


def check_config(path: Path) -> dict:
    """Loads the run configuration and checks its parameters (`archft.runconfig.RunConfig`)
    before ZenML starts, so that a typo fails in a second.

    Raises:
        ConfigError: naming the file and the problem.
    """
    from archft.runconfig import RunConfig, read_config_file

    config = read_config_file(path)
    if not isinstance(config, dict) or not isinstance(config.get("parameters"), dict):
        raise ConfigError(f"{path}: expected a mapping with a 'parameters' section")
    run = RunConfig.from_dict(config["parameters"], str(path))
    for name in ("data", "space", "search", "finetune"):
        if not isinstance(config["parameters"].get(name), dict):
            raise ConfigError(f"{path}: parameters.{name} must be a mapping")
    kind, _, where = run.data.source.partition(":")
    if kind == "imagefolder" and where and not Path(where).expanduser().is_dir():
        raise ConfigError(f"image folder not found: {where} (if dvc.yaml produces it, run "
                          "`dvc repro` first; `make run` does both)")
    return config


def collect(run, results: Path) -> dict:
    """Copies the run's outputs a person looks at into `results`; returns the evaluation and
    the promotion."""
    results.mkdir(parents=True, exist_ok=True)
    steps = run.steps
    wanted = {"search": ("search_result", "search"), "finetune": ("model", "model"),
              "vanilla_baseline": ("vanilla_model", "vanilla"),
              "export_onnx": ("onnx_model", "onnx")}
    for step_name, (output, folder) in wanted.items():
        dst = results / folder
        shutil.rmtree(dst, ignore_errors=True)  # never leave an earlier run's copy behind
        if step_name in steps:
            shutil.copytree(steps[step_name].outputs[output][0].load().path, dst)
    evaluation = steps["evaluate"].outputs["evaluation"][0].load()
    promotion = steps["promote"].outputs["promotion"][0].load()
    report = steps["validate"].outputs["validation_report"][0].load()
    (results / rundirs.RESULTS.validation_report).write_text(str(report))
    card = steps["model_card"].outputs["model_card"][0].load()
    (results / rundirs.RESULTS.model_card).write_text(str(card))
    (results / rundirs.RESULTS.evaluation).write_text(json.dumps(evaluation, indent=2))
    (results / rundirs.RESULTS.promotion).write_text(json.dumps(promotion, indent=2))
    return {"evaluation": evaluation, "promotion": promotion}


def stage2_rate(evaluation: dict, prefix: str) -> str:
    """`, stage-2 lr 0.05` for the model whose evaluation keys start with `prefix`, with the
    rates it was chosen from on validation when there were several."""
    lr, sweep = evaluation.get(f"{prefix}_lr"), evaluation.get(f"{prefix}_lr_sweep")
    if lr is None:
        return ""
    chosen = (" chosen on validation from " + "/".join(f"{p['lr']:g}" for p in sweep)
              if sweep else "")
    return f", stage-2 lr {lr:g}{chosen}"


def model_line(evaluation: dict, prefix: str) -> str:
    """`95.67% test (val 96.00%), 125.4 M MAdds, 3.38 M params, batch-1 1.23 ms` for the model
    whose evaluation keys start with `prefix` (two_stage, vanilla)."""
    e = {k[len(prefix) + 1:]: v for k, v in evaluation.items() if k.startswith(prefix + "_")}
    latency = e.get("onnxruntime_batch1_ms")
    return (f"{100 * e['test_accuracy']:.2f}% test (val {100 * e['val_accuracy']:.2f}%), "
            f"{e['madds'] / 1e6:.1f} M MAdds, {e['params'] / 1e6:.2f} M params"
            + (f", batch-1 {latency:.2f} ms" if latency is not None else ""))


def failure_line(run) -> str:
    """The first failing step and the last line of its error."""
    from zenml.enums import ExecutionStatus

    for name, step_run in run.steps.items():
        if step_run.status == ExecutionStatus.FAILED:
            info = step_run.exception_info
            message = info.traceback.strip().splitlines()[-1] if info and info.traceback else ""
            return f"step {name} failed: {message}"
    return f"pipeline run {run.name} ended {run.status}"


class _UserErrorsWithoutTraceback(logging.Filter):
    """ZenML logs a failed step with its traceback; a user error (bad data, failed validation)
    is already named in one line by the step runner, so its traceback is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], ArchftError):
            record.exc_info, record.exc_text = None, None
        return True


def compile_only(config: Path, out: Path) -> int:
    """`--compile-only`: the KFP YAML of `config`, compiled in a temporary ZenML store."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="archft-kfp-") as tmp:
        os.environ["ZENML_CONFIG_PATH"] = tmp  # before zenml is imported (check_config does)
        try:
            check_config(config)
        except ArchftError as e:
            print(f"run.py: error: {e}", file=sys.stderr)
            return 1
        from pipelines.kubeflow import compile_offline

        compile_offline(config, out)
    print(f"compiled {config} for Kubeflow Pipelines to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/default.yaml", type=Path,
                        help="ZenML run configuration (default: configs/default.yaml)")
    parser.add_argument("--no-cache", action="store_true", help="rerun every step")
    parser.add_argument("--results", type=Path,
                        help="where to copy the outputs (default: runs/<config name>)")
    parser.add_argument("--threads", type=threads_arg, default=None,
                        help="CPU threads of torch (default: torch's choice, one per core); "
                             "results are reproducible for a fixed count, which the run "
                             "records")
    parser.add_argument("--compile-only", type=Path, metavar="FILE",
                        help="write the Kubeflow Pipelines YAML of this config to FILE and run "
                             "nothing (offline: a throwaway ZenML store and stack with archft's "
                             "Kubeflow orchestrator; no cluster, registry or docker)")
    args = parser.parse_args(argv)
    if args.compile_only:
        return compile_only(args.config, args.compile_only)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    try:
        check_config(args.config)
    except ArchftError as e:
        print(f"run.py: error: {e}", file=sys.stderr)
        return 1

    from zenml.client import Client

    logging.getLogger("zenml.orchestrators.local.local_orchestrator").addFilter(
        _UserErrorsWithoutTraceback())
    from pipelines.architectural_finetuning import architectural_finetuning

    options = {"config_path": str(args.config)}
    if args.no_cache:
        options["enable_cache"] = False
    pipeline = architectural_finetuning.with_options(**options)
    try:
        run = pipeline()
    except KeyboardInterrupt:
        print("run.py: interrupted; run the same command again: finished steps come from the "
              "cache and the search resumes from its checkpoint", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the step's own error is in the run's record
        runs = Client().list_pipeline_runs(sort_by="desc:created", size=1,
                                           pipeline="architectural_finetuning")
        line = failure_line(runs.items[0]) if runs.items else f"{type(e).__name__}: {e}"
        print(f"run.py: error: {line}", file=sys.stderr)
        return 1
    run = Client().get_pipeline_run(run.id)
    results = args.results or Path("runs") / args.config.stem
    out = collect(run, results)
    e, p = out["evaluation"], out["promotion"]
    cached = sum(s.status == "cached" for s in run.steps.values())
    print(f"\npipeline run {run.name}: {len(run.steps)} steps ({cached} from the cache)")
    print(f"  architecture   {e['architecture']}  ({e['num_subnets']:,} subnets in the "
          f"{e['scope']} scope of {e['base']})")
    stop = (f"early-stopped at step {e['early_stop_step']}, {100 * e['search_cost_saved']:.1f}% "
            "of the search saved" if e["early_stop_step"] else "ran its full budget")
    cost = f", cost weight {e['search_cost_weight']:g}" if e.get("search_cost_weight") else ""
    print(f"  search         {e['strategy']}{cost}, {stop}")
    print(f"  two-stage      {model_line(e, 'two_stage')}{stage2_rate(e, 'finetune')}")
    if e.get("vanilla_test_accuracy") is not None:
        print(f"  vanilla        {model_line(e, 'vanilla')}{stage2_rate(e, 'vanilla_finetune')}"
              " (the unmodified base, same scope and budget)")
        print(f"                 two-stage - vanilla {100 * e['gain_over_vanilla']:+.2f} test "
              "points")
        if e.get("gain_over_vanilla_ci95"):
            from archft.export import paired_summary

            paired = paired_summary(e["gain_over_vanilla_ci95"], e["gain_over_vanilla_p"],
                                    e["test_images"])
            print(f"                 {paired} (one seed: the training's noise is not in it)")
    onnx_acc = ("" if e["onnx_test_accuracy"] == e["test_accuracy"] else
                f"; onnxruntime {100 * e['onnx_test_accuracy']:.2f}%")
    print(f"  shipped        {e['shipped']} ({100 * e['test_accuracy']:.2f}% on {e['test_images']} "
          f"test images{onnx_acc}): {e['shipped_reason']}")
    print(f"  ONNX           top-1 agreement with torch {100 * e['onnx_top1_agreement']:.1f}%, "
          f"largest logit difference {e['onnx_max_logit_difference']:.1e}")
    print(f"  model          {p['model']} version {p['version']} -> {p['stage']} ({p['reason']})")
    print(f"  reproducible   {e['threads']} CPU threads, deterministic kernels: the same command "
          "gives the same architecture and accuracy")
    vanilla_dir = "vanilla/, " if (results / "vanilla").is_dir() else ""
    print(f"results in {results}/: search/ (architecture.json, action_heatmap.png, "
          f"reward_curve.png, pareto.png), model/, {vanilla_dir}onnx/model.onnx, evaluation.json, "
          "validation_report.html, model_card.html")
    print("dashboard: zenml login --local   (then open http://127.0.0.1:8237)")
    return 0


if __name__ == "__main__":
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    sys.exit(main())
