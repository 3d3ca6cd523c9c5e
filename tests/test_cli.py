import json
import subprocess
import sys

import pytest


def archft(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "archft.cli", *args], capture_output=True,
                          text=True, cwd=cwd)


def test_space_json():
    r = archft("space", "--base", "resnet50", "--scope", "large", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["num_decisions"] == 13 and data["num_subnets"] == 2 ** 13
    assert data["preprocessing"]["mean"] == [0.485, 0.456, 0.406]


def test_space_text():
    r = archft("space", "--base", "efficientnet_lite0", "--scope", "medium", "--kernels", "3,5")
    assert r.returncode == 0 and "5 decisions, 1,024 subnets" in r.stdout


def test_space_prints_the_cost_of_the_base_and_the_range():
    r = archft("space", "--base", "efficientnet_lite0", "--scope", "medium", "--image-size", "128")
    assert r.returncode == 0, r.stderr
    # archft.models.cost on EfficientNet-Lite0 at 128 px (tests/test_cost.py verifies it).
    assert ("cost at 128 px: base 125.4 M MAdds (39.4 M in the scope), 3.38 M params; the space "
            "spans 105.2-127.7 M MAdds") in r.stdout
    data = json.loads(archft("space", "--base", "resnet18", "--image-size", "224",
                             "--json").stdout)
    # torchvision's 1,814,073,344 with a 10-class head instead of 1000: 512 x 990 fewer.
    assert data["cost"]["base_madds"] == 1814073344 - 512 * 990
    assert data["cost"]["base_params"] == 11689512 - 513 * 990


@pytest.mark.parametrize("args,message", [
    (["space", "--base", "vgg16"], "unknown base 'vgg16'"),
    (["space", "--base", "resnet18", "--scope", "tiny"], "unknown scope 'tiny'"),
    (["space", "--base", "resnet18", "--kernels", "2,4"], "kernels must be"),
    (["data", "--dataset", "imagefolder:/no/such/dir"], "image folder not found: /no/such/dir"),
    (["data", "--dataset", "cifar10:/no/such/dir"], "CIFAR-10 not found under /no/such/dir"),
    (["data", "--dataset", "digits", "--patches", "5", "2", "3"],
     "patches and patch_side apply to the patch tasks (photos, textures), not to 'digits'"),
    (["data", "--dataset", "photos", "--patches", "5", "0", "3"],
     "patches must be three positive integers"),
    (["data", "--dataset", "textures", "--patch-side", "0.3", "0.2"],
     "patch_side must be two fractions 0 < min <= max <= 1"),
])
def test_user_errors_are_one_line(args, message):
    r = archft(*args)
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and message in r.stderr
    assert "Traceback" not in r.stderr


def test_corrupt_image_is_one_line(imagefolder):
    (imagefolder / "rose" / "rose_1.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    r = archft("data", "--dataset", f"imagefolder:{imagefolder}")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "rose_1.png" in r.stderr and r.stderr.strip().count("\n") == 0


def test_bad_option_is_a_usage_error():
    r = archft("space", "--base", "resnet18", "--kernels", "a,b")
    assert r.returncode == 2 and "comma-separated integers" in r.stderr


def test_data_manifest(tmp_path):
    out = tmp_path / "manifest.json"
    r = archft("data", "--dataset", "digits", "--manifest", str(out), "--json")
    assert r.returncode == 0, r.stderr
    m = json.loads(out.read_text())
    assert len(m["records"]) == 1797 and m["summary"]["images"]["test"] == 359
