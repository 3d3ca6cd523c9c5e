"""The same command twice gives the same architecture, the same weights and the same accuracy:
every random draw is a function of the seed, and CPU kernels at a fixed thread count are
deterministic (issue 10, item 6)."""

import json
import subprocess
import sys
from pathlib import Path

import torch
from safetensors import safe_open

ARCHFT = str(Path(sys.executable).parent / "archft")


def _run(*args: str) -> None:
    proc = subprocess.run([ARCHFT, *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_same_commands_twice_give_the_same_results(tmp_path):
    for run in ("first", "second"):
        out = tmp_path / run
        _run("search", "--dataset", "digits", "--image-size", "32", "--scope", "small",
             "--budget", "10", "--controller-steps", "2", "--warmup", "0.3", "--reward",
             "neg_loss", "--threads", "2", "--no-progress", "--out", str(out / "search"))
        _run("finetune", "--architecture", str(out / "search" / "architecture.json"),
             "--dataset", "digits", "--image-size", "32", "--steps", "20", "--eval-every", "10",
             "--threads", "2", "--no-progress", "--out", str(out / "model"))
    a, b = tmp_path / "first", tmp_path / "second"
    for name in ("search/architecture.json", "search/search_history.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    # safetensors writes its metadata map in hash order, so compare content, not bytes
    for name in ("search/supernet.safetensors", "model/weights.safetensors"):
        with safe_open(a / name, "pt") as fa, safe_open(b / name, "pt") as fb:
            assert fa.metadata() == fb.metadata(), name
            assert sorted(fa.keys()) == sorted(fb.keys()), name
            for key in fa.keys():
                assert torch.equal(fa.get_tensor(key), fb.get_tensor(key)), (name, key)
    ma, mb = (json.loads((d / "model" / "metrics.json").read_text()) for d in (a, b))
    assert ma["curve"] == mb["curve"] and ma["test_accuracy"] == mb["test_accuracy"]
    assert ma["threads"] == mb["threads"] == 2
    sa = json.loads((a / "search" / "summary.json").read_text())
    assert sa["threads"] == ma["threads"] and sa["features"]["cached"]
