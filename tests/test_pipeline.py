"""The pipeline on the real ZenML local stack (a temporary store), real Great Expectations and
real onnxruntime: `python run.py` end to end, caching, validation failures and promotion.

The fixture's runs share one store and go in order (about four minutes on two cores):
    smoke        fresh store: every step runs; the first version goes to production
    smoke again  every step from the cache but promote; equal accuracy stays in staging
    budget 16    only search and what follows it rerun
    3 steps      a worse fine-tune (its rate chosen from two on validation): staging
    60 steps     a better fine-tune: production, the previous production version archived
    no vanilla   the baseline left out by config: evaluate reruns without it
    vanilla wins a wrecked supernet (search lr 20) as stage 2's start: vanilla ships
The tests after it add runs to the same store (about two minutes more):
    no vanilla from a checkout with archft changed: every step reruns
    corrupt / leaked image folders: fail at validate, naming the expectation; nothing promoted
    Ctrl-C during a search, then the same command: the search resumes from its checkpoint
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import write_imagefolder

ROOT = Path(__file__).resolve().parents[1]
SMOKE = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
NO_VANILLA = {**SMOKE, "parameters": {**SMOKE["parameters"], "vanilla": False}}
STEPS = ("ingest", "validate", "build_supernet", "search", "vanilla_baseline", "finetune",
         "select_model", "export_onnx", "evaluate", "model_card", "promote")


class Pipeline:
    """Runs `run.py` against a private ZenML store and reads the results back."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.env = {**os.environ, "ZENML_CONFIG_PATH": str(tmp / "zenml"),
                    "ZENML_ANALYTICS_OPT_IN": "false", "ARCHFT_WORK": str(tmp / "work"),
                    "ZENML_LOGGING_COLORS_DISABLED": "true"}
        self.n = 0

    def run(self, config: dict) -> subprocess.CompletedProcess:
        self.n += 1
        path = self.tmp / f"config{self.n}.yaml"
        path.write_text(yaml.safe_dump(config))
        return subprocess.run([sys.executable, "run.py", "--config", str(path), "--results",
                               str(self.tmp / f"results{self.n}")], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=900)

    def client(self):
        os.environ.update({k: self.env[k] for k in ("ZENML_CONFIG_PATH",
                                                     "ZENML_ANALYTICS_OPT_IN")})
        from zenml.client import Client

        return Client()

    def last_run(self):
        runs = self.client().list_pipeline_runs(sort_by="desc:created", size=1,
                                                pipeline="architectural_finetuning")
        return self.client().get_pipeline_run(runs.items[0].id)

    def statuses(self) -> dict[str, str]:
        return {name: str(s.status) for name, s in self.last_run().steps.items()}

    def stages(self) -> dict[int, str | None]:
        versions = self.client().list_model_versions("archft-classifier", size=100)
        return {v.number: (str(v.stage) if v.stage else None) for v in versions.items}

    def promotion(self) -> dict:
        return self.last_run().steps["promote"].outputs["promotion"][0].load()


def variant(**changes) -> dict:
    config = copy.deepcopy(SMOKE)
    for key, value in changes.items():
        section, field = key.split("__")
        config["parameters"][section][field] = value
    return config


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Executes the sequence once; each test checks one part of it."""
    p = Pipeline(tmp_path_factory.mktemp("pipeline"))
    out = {}
    for name, config in [("fresh", SMOKE), ("again", SMOKE),
                         ("budget", variant(search__budget=16)),
                         ("worse", variant(finetune__steps=3, finetune__lr=[0.05, 0.2])),
                         ("better", variant(finetune__steps=60)),
                         ("no_vanilla", NO_VANILLA),
                         ("vanilla_wins", variant(search__lr=20.0, finetune__init="supernet"))]:
        proc = p.run(config)
        assert proc.returncode == 0, f"{name}: {proc.stderr[-3000:]}"
        out[name] = {"stdout": proc.stdout, "statuses": p.statuses(), "stages": p.stages(),
                     "promotion": p.promotion(), "run": p.last_run()}
    saved = os.environ.copy()
    yield p, out
    os.environ.clear()
    os.environ.update(saved)


def test_smoke_pipeline_runs_every_step_and_reports(runs):
    p, out = runs
    fresh = out["fresh"]
    assert fresh["statuses"] == {s: "completed" for s in STEPS}
    assert "% test (val " in fresh["stdout"] and "zenml login --local" in fresh["stdout"]
    results = p.tmp / "results1"
    for f in ("search/architecture.json", "search/action_heatmap.png", "search/reward_curve.png",
              "model/weights.safetensors", "model/accuracy_curve.png", "onnx/model.onnx",
              "vanilla/metrics.json", "evaluation.json", "validation_report.html",
              "model_card.html", "search/pareto.png"):
        assert (results / f).is_file(), f
    run = fresh["run"]
    # Key numbers are metadata; plots are visualisations of the artifacts.
    search_meta = run.steps["search"].run_metadata
    assert search_meta["num_subnets"] == 6 and "search_cost_saved" in search_meta
    evaluation = run.steps["evaluate"].outputs["evaluation"][0].load()
    assert evaluation["onnx_top1_agreement"] > 0.99
    assert evaluation["onnx_max_logit_difference"] < 1e-3
    assert 0.5 < evaluation["test_accuracy"] <= 1 and "vanilla_test_accuracy" in evaluation
    assert (evaluation["finetune_lr"], evaluation["vanilla_finetune_lr"]) == (0.05, 0.05)
    assert evaluation["finetune_lr_sweep"] is None
    assert " ms, stage-2 lr 0.05\n" in fresh["stdout"]
    # the gain with the test set's noise around it: both models' per-image results, paired
    low, high = evaluation["gain_over_vanilla_ci95"]
    assert low <= evaluation["gain_over_vanilla"] <= high
    assert 0 < evaluation["gain_over_vanilla_p"] <= 1
    assert re.search(rf"95% CI [+-]\d+\.\d\d\.\.[+-]\d+\.\d\d points on these "
                     rf"{evaluation['test_images']} test images, McNemar p ", fresh["stdout"])
    artifact = run.steps["search"].outputs["search_result"][0]
    assert {Path(v.uri).name for v in artifact.visualizations} >= {"action_heatmap.png",
                                                                   "reward_curve.png"}
    assert artifact.run_metadata["num_subnets"] == 6
    assert Path(artifact.uri, "architecture.json").is_file()  # stored file by file
    version = p.client().get_model_version("archft-classifier", 1)
    assert version.run_metadata["test_accuracy"] == evaluation["test_accuracy"]
    assert version.run_metadata["num_subnets"] == 6


def test_the_shipped_model_is_chosen_on_validation_with_its_cost(runs):
    p, out = runs
    fresh = out["fresh"]["run"].steps
    e = fresh["evaluate"].outputs["evaluation"][0].load()
    selection = fresh["select_model"].outputs["selection"][0].load()
    assert e["shipped"] == selection["chosen"] and e["shipped_reason"] == selection["reason"]
    chosen = "two_stage" if e["shipped"] == "two-stage" else "vanilla"
    assert e["val_accuracy"] == e[f"{chosen}_val_accuracy"]
    assert (e["madds"], e["params"]) == (e[f"{chosen}_madds"], e[f"{chosen}_params"])
    # Both models' cost, counted on the nets (archft.models.cost): the searched block of
    # digits' small scope (blocks.15 on 1x1 maps) against the base's k3_e6.
    assert (e["vanilla_madds"], e["vanilla_params"]) == (7847648, 3383818)
    assert e["two_stage_onnxruntime_batch1_ms"] > 0 and e["vanilla_onnxruntime_batch1_ms"] > 0
    stdout = out["fresh"]["stdout"]
    assert re.search(r"two-stage +\d+\.\d\d% test \(val \d+\.\d\d%\), \d+\.\d M MAdds, "
                     r"\d\.\d\d M params", stdout)
    assert f"shipped        {e['shipped']} (" in stdout and e["shipped_reason"] in stdout
    version = p.client().get_model_version("archft-classifier", out["fresh"]["promotion"][
        "version"])
    for key in ("shipped", "shipped_reason", "madds", "params", "vanilla_madds",
                "two_stage_madds", "vanilla_test_accuracy", "two_stage_test_accuracy"):
        assert version.run_metadata[key] == e[key], key
    card = str(fresh["model_card"].outputs["model_card"][0].load())
    assert f"Shipped: {e['shipped']}" in card and "data:image/png;base64," in card
    assert e["dataset_fingerprint"] in card


def test_a_run_whose_vanilla_wins_on_validation_ships_vanilla(runs):
    p, out = runs
    run = out["vanilla_wins"]["run"]
    e = run.steps["evaluate"].outputs["evaluation"][0].load()
    assert e["shipped"] == "vanilla"
    assert e["two_stage_val_accuracy"] < e["vanilla_val_accuracy"]
    assert "vanilla is better on validation" in e["shipped_reason"]
    assert e["shipped_val_ci95"][1] < 0  # the two-stage model's deficit is outside the noise
    # What is exported, evaluated and promoted is vanilla: its accuracy, its cost.
    assert e["test_accuracy"] == e["vanilla_test_accuracy"]
    assert e["madds"] == e["vanilla_madds"] and e["shipped_architecture"] == "k3_e6"
    assert "shipped        vanilla (" in out["vanilla_wins"]["stdout"]
    assert out["vanilla_wins"]["promotion"]["onnx_test_accuracy"] == e["onnx_test_accuracy"]
    card = str(run.steps["model_card"].outputs["model_card"][0].load())
    assert "Shipped: vanilla" in card and "vanilla is better on validation" in card


def test_unchanged_rerun_is_fully_cached_but_promote(runs):
    _, out = runs
    assert out["again"]["statuses"] == {**{s: "cached" for s in STEPS}, "promote": "completed"}
    assert "10 from the cache" in out["again"]["stdout"]


def test_budget_change_reruns_search_and_its_successors_only(runs):
    _, out = runs
    statuses = out["budget"]["statuses"]
    assert {s for s, v in statuses.items() if v == "cached"} == {
        "ingest", "validate", "build_supernet", "vanilla_baseline"}
    assert {s for s, v in statuses.items() if v == "completed"} == {
        "search", "finetune", "select_model", "export_onnx", "evaluate", "model_card", "promote"}


def test_a_change_in_the_code_steps_call_reruns_them(runs, tmp_path):
    """ZenML keys a step on its own source only; the pipeline adds the source of archft and
    steps/, so a fix in the library does not leave old results in the cache."""
    p, out = runs
    copy = tmp_path / "checkout"
    for name in ("archft", "steps", "pipelines", "configs"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "run.py", copy)
    with (copy / "archft" / "remap.py").open("a") as f:
        f.write("\n# a fix that changes nothing but the source\n")
    config = p.tmp / "code_change.yaml"
    config.write_text(yaml.safe_dump(NO_VANILLA))  # run before: every step would be cached
    proc = subprocess.run([sys.executable, "run.py", "--config", str(config), "--results",
                           str(tmp_path / "results")], cwd=copy, env=p.env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    statuses = p.statuses()
    assert statuses == {s: "completed" for s in STEPS
                        if s not in ("vanilla_baseline", "select_model")}
    assert out["no_vanilla"]["run"].steps["search"].config.cache_policy.cache_func is not None


def test_promotion_keeps_the_best_model_in_production(runs):
    _, out = runs
    assert out["fresh"]["promotion"]["stage"] == "production"
    assert out["again"]["promotion"]["stage"] == "staging"  # equal is not better
    assert "does not beat" in out["again"]["promotion"]["reason"]
    for name in ("budget", "worse", "better"):
        prom = out[name]["promotion"]
        previous = prom["previous_production_onnx_test_accuracy"]
        assert prom["stage"] == ("production" if prom["onnx_test_accuracy"] > previous
                                 else "staging")
    worse, better = out["worse"]["promotion"], out["better"]["promotion"]
    assert worse["stage"] == "staging" and worse["onnx_test_accuracy"] < worse[
        "previous_production_onnx_test_accuracy"]
    assert better["stage"] == "production"
    stages = out["better"]["stages"]
    assert stages[better["version"]] == "production"
    assert stages[worse["version"]] == "staging"
    assert stages[better["previous_production"]] == "archived"
    assert list(stages.values()).count("production") == 1


def test_a_list_of_learning_rates_is_chosen_from_on_validation_for_both_models(runs):
    _, out = runs
    evaluation = out["worse"]["run"].steps["evaluate"].outputs["evaluation"][0].load()
    for prefix in ("finetune", "vanilla_finetune"):
        sweep = evaluation[f"{prefix}_lr_sweep"]
        assert [p["lr"] for p in sweep] == [0.05, 0.2]
        best = max(sweep, key=lambda p: p["val_accuracy"])
        assert evaluation[f"{prefix}_lr"] == best["lr"]
    assert out["worse"]["run"].steps["finetune"].run_metadata["lr"] == evaluation["finetune_lr"]
    assert out["worse"]["stdout"].count("chosen on validation from 0.05/0.2") == 2


def test_vanilla_baseline_is_optional(runs):
    _, out = runs
    statuses = out["no_vanilla"]["statuses"]
    assert "vanilla_baseline" not in statuses and "select_model" not in statuses
    # export_onnx reruns: its input is the two-stage model itself, not select_model's copy.
    assert {s for s, v in statuses.items() if v == "completed"} == {
        "export_onnx", "evaluate", "model_card", "promote"}
    evaluation = out["no_vanilla"]["run"].steps["evaluate"].outputs["evaluation"][0].load()
    assert "vanilla_test_accuracy" not in evaluation and evaluation["shipped"] == "two-stage"
    assert evaluation["onnx_test_accuracy"] == out["fresh"]["promotion"]["onnx_test_accuracy"]
    assert "vanilla baseline" not in out["no_vanilla"]["stdout"]


def test_a_first_run_decodes_each_image_once(runs, tmp_path):
    """ingest reads and decodes every file once; every later step gets the pixels from the
    dataset artifact (the local orchestrator runs all steps in this one process)."""
    p, _ = runs
    folder = write_imagefolder(tmp_path / "pets", {"cat": 14, "dog": 14})
    config = variant(data__source=f"imagefolder:{folder}", search__batch_size=16,
                     finetune__batch_size=16)
    config["parameters"]["validation"]["min_train_images_per_class"] = 5
    proc = p.run(config)
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps = p.last_run().steps
    assert {s: str(r.status) for s, r in steps.items()} == {s: "completed" for s in STEPS}
    decoded = {s: r.run_metadata.get("decoded_images") for s, r in steps.items()}
    assert decoded["ingest"] == 28
    assert {s: decoded[s] for s in ("search", "finetune", "vanilla_baseline", "evaluate")} == {
        "search": 0, "finetune": 0, "vanilla_baseline": 0, "evaluate": 0}
    dataset = steps["ingest"].outputs["dataset"][0]
    assert dataset.run_metadata["images"] == 28 and dataset.run_metadata["resident"] is True


def _bad_folder(root: Path, kind: str) -> Path:
    if kind == "corrupt":
        write_imagefolder(root, {"cat": 14, "dog": 14})
        (root / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    else:  # the same photo in train and test: leakage
        write_imagefolder(root / "train", {"cat": 14, "dog": 14})
        write_imagefolder(root / "val", {"cat": 2, "dog": 2}, seed=1)
        write_imagefolder(root / "test", {"cat": 2, "dog": 2}, seed=2)
        shutil.copy(root / "train" / "dog" / "dog_3.png", root / "test" / "dog" / "copy.png")
    return root


@pytest.mark.parametrize("kind, expectation, culprit", [
    ("corrupt", "expect_column_values_to_be_in_set(readable)", "cat/broken.png"),
    ("leak", "expect_column_values_to_be_in_set(splits_with_this_image)", "test/dog/copy.png"),
])
def test_bad_data_fails_at_validate_and_promotes_nothing(runs, tmp_path, kind, expectation,
                                                         culprit):
    p, _ = runs
    before = p.stages()
    folder = _bad_folder(tmp_path / kind, kind)
    config = variant(data__source=f"imagefolder:{folder}")
    config["parameters"]["validation"]["min_train_images_per_class"] = 5
    proc = p.run(config)
    assert proc.returncode == 1
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("run.py: error: step validate failed:")
    assert expectation in line and culprit in line
    assert "Traceback" not in proc.stderr  # a user error is one line, not a stack
    statuses = p.statuses()
    assert statuses["ingest"] == "completed" and statuses["validate"] == "failed"
    assert "promote" not in statuses or statuses["promote"] != "completed"
    after = p.stages()
    assert {v: s for v, s in after.items() if v in before} == before
    assert all(s is None for v, s in after.items() if v not in before)
    # The report that names the failure is kept for the audit.
    report = p.client().get_artifact_version("validation_report").load()
    assert "FAIL" in str(report) and culprit in str(report)


def test_bad_config_is_one_line_naming_file_and_field(runs, tmp_path):
    p, _ = runs
    config = variant(search__budjet=5)
    proc = p.run(config)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0
    assert "unknown search option 'budjet'" in proc.stderr and "config" in proc.stderr
    proc = p.run(variant(data__source=f"imagefolder:{tmp_path / 'missing'}"))
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0
    assert "image folder not found" in proc.stderr and "dvc repro" in proc.stderr


@pytest.mark.parametrize("name", sorted(c.name for c in (ROOT / "configs").glob("*.yaml")))
def test_shipped_configs_pass_the_checks(name, tmp_path, monkeypatch):
    import run

    monkeypatch.chdir(tmp_path)  # default.yaml reads data/textures, which `dvc repro` writes
    (tmp_path / "data" / "textures").mkdir(parents=True)
    params = run.check_config(ROOT / "configs" / name)["parameters"]
    if name == "default.yaml":  # the main job searches for real: several live decisions
        from archft.space import SearchSpace

        space = SearchSpace.from_base(**params["space"], num_classes=10)
        assert space.num_decisions >= 4
        assert space.inert_kernels(params["data"]["image_size"]) == []
    if name.startswith("paper_"):  # seed 000, Table 2
        assert params["space"]["base"] == name.split("_")[1]
        assert params["data"]["source"].startswith("cifar10:")
        assert params["search"]["budget"] == 100_000
        assert params["search"]["batch_size"] == params["finetune"][
            "batch_size"] == 64
        assert params["search"]["lr"] == 0.05
        assert params["search"]["controller_lr"] == 3.5e-4


def test_interrupted_search_resumes_on_the_same_command(runs):
    """Ctrl-C during the search: the step checkpoints and fails; the same command again takes
    ingest/validate/build_supernet from the cache and continues the search where it stopped.

    The checkpoint root comes from the run configuration, as configs/kubeflow.yaml sets it to
    a PVC mount (`steps.search.environment.ARCHFT_WORK`): a pod that restarts finds it there."""
    p, _ = runs
    config = variant(search__budget=40, search__checkpoint_every=2,
                     search__early_stop={"enabled": False})
    config["parameters"]["vanilla"] = False
    volume = p.tmp / "volume"  # not the fixture's ARCHFT_WORK
    config["steps"] = {"search": {"environment": {"ARCHFT_WORK": str(volume)}}}
    path = p.tmp / "interrupted.yaml"
    path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "run.py", "--config", str(path), "--results",
               str(p.tmp / "resumed")]
    proc = subprocess.Popen(command, cwd=ROOT, env=p.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while not list(volume.glob("search-*/checkpoint.pt")):
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-2000:]
    assert "search resumes from its checkpoint" in err.strip().splitlines()[-1]
    assert p.statuses()["search"] == "failed"
    assert not list((p.tmp / "work").glob("search-*/checkpoint.pt"))

    proc = subprocess.run(command, cwd=ROOT, env=p.env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = re.search(r"resuming the search in \S+ at step (\d+) of 40",
                        proc.stdout + proc.stderr)
    assert resumed and 2 <= int(resumed[1]) < 40
    statuses = p.statuses()
    assert all(statuses[s] == "cached" for s in ("ingest", "validate", "build_supernet"))
    assert statuses["search"] == "completed"
    rows = (p.tmp / "resumed" / "search" / "search_history.jsonl").read_text().splitlines()
    history = [json.loads(r) for r in rows]  # one row per controller update, none repeated
    assert [h["update"] for h in history] == list(range(len(history)))
    assert {h["step"] for h in history} == set(range(1, 41))
    assert re.search(rf"resuming the search in {re.escape(str(volume))}/search-",
                     proc.stdout + proc.stderr)


CHROMIUM = "/usr/bin/chromium"  # Debian's package; `.ci/run` installs it


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dashboard(runs):
    """The local ZenML server (`zenml login --local`) over the store of the runs above."""
    p, out = runs
    # The dashboard first asks a new user to fill in a survey; answer it the way the form does.
    # (The server endpoint drops email_opted_in, so it is set on the SQL store before it starts.)
    p.client().update_user("default", updated_email_opt_in=False,
                           updated_metadata={"finished_onboarding_survey": True})
    port = _free_port()
    env = {**p.env, "ZENML_AUTO_OPEN_DASHBOARD": "false"}
    zenml = [str(Path(sys.executable).with_name("zenml"))]
    login = subprocess.run(zenml + ["login", "--local", "--port", str(port)], env=env,
                           capture_output=True, text=True, timeout=300)
    assert login.returncode == 0, login.stderr[-2000:]
    try:
        yield f"http://127.0.0.1:{port}", out
    finally:
        subprocess.run(zenml + ["logout", "--local"], env=env, capture_output=True, timeout=120)


def _chromium(pw):
    """Debian's chromium, headless and quiet (no network of its own)."""
    return pw.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"])


def _frame_text(frame) -> str:
    """A frame's visible text ("" while it has no body yet)."""
    try:
        return frame.inner_text("body", timeout=2_000)
    except Exception:  # noqa: BLE001 - a frame still loading or detached
        return ""


def _run_page(browser, url: str, run, height: int = 900):
    """A page showing `run` in the dashboard at `url`."""
    page = browser.new_page(viewport={"width": 1400, "height": height})
    page.goto(f"{url}/projects/default/runs/{run.id}", wait_until="networkidle",
              timeout=120_000)
    return page


def test_dashboard_shows_the_run_and_its_steps(dashboard, tmp_path):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    url, out = dashboard
    run = out["fresh"]["run"]
    shot = Path(os.environ.get("ARCHFT_DASHBOARD_SCREENSHOT", tmp_path / "dashboard.png"))
    with sync_playwright() as pw:
        browser = _chromium(pw)
        try:
            page = _run_page(browser, url, run)
            page.get_by_text(run.name).first.wait_for(timeout=60_000)
            assert "/survey" not in page.url and "/login" not in page.url, page.url
            for name in STEPS:  # the DAG draws every step as a node
                page.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
            text = page.inner_text("body")
            assert "architectural_finetuning" in text and "completed" in text
            page.screenshot(path=str(shot), timeout=120_000, animations="disabled")
        finally:
            browser.close()
    assert shot.stat().st_size > 20_000


def test_dashboard_shows_the_model_card(dashboard, tmp_path):
    """The run's model card, opened the way a person does: the artifact node in the run's DAG,
    its Visualization tab, Load Preview."""
    from playwright.sync_api import sync_playwright

    url, out = dashboard
    run = out["vanilla_wins"]["run"]
    shot = Path(os.environ.get("ARCHFT_MODEL_CARD_SCREENSHOT", tmp_path / "card.png"))
    with sync_playwright() as pw:
        browser = _chromium(pw)
        try:
            page = _run_page(browser, url, run, height=1000)
            nodes = page.get_by_text("model_card", exact=True)
            nodes.first.wait_for(timeout=60_000)
            nodes.last.click()  # the step's node comes first, its artifact's after it
            page.get_by_role("tab", name="Visualization").click()
            page.get_by_role("button", name="Load Preview").click()
            deadline = time.monotonic() + 60
            text = ""
            while "archft model card" not in text and time.monotonic() < deadline:
                page.wait_for_timeout(1000)  # the preview renders the HTML in an iframe
                text = "\n".join(_frame_text(f) for f in page.frames)
            assert "Shipped: vanilla" in text and "vanilla is better on validation" in text
            assert "(shipped)" in text and "MAdds" in text
            page.screenshot(path=str(shot), timeout=120_000, animations="disabled")
        finally:
            browser.close()
    assert shot.stat().st_size > 20_000
