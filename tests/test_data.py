import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from archft.core.errors import ConfigError, DataError
from archft.data import SPLITS, DataConfig, decode_image, load_dataset
from archft.data.loaders import (
    BatchTransform,
    DeviceLoader,
    StreamingLoader,
    make_loader,
    random_crop,
)
from tests.conftest import kept_images, photo_crops, write_imagefolder


def _split_hashes(ds):
    return {s: {r.sha256 for r in ds.records if r.split == s} for s in SPLITS}


def test_digits_source():
    ds = load_dataset(DataConfig("digits", image_size=32, seed=0))
    assert ds.images.shape == (1797, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.classes == [str(i) for i in range(10)] and not ds.flip
    n = {s: len(ds.indices(s)) for s in SPLITS}
    assert n == {"train": 1295, "val": 143, "test": 359}
    # Grey replicated to RGB; 0..16 scaled to the full 0..255 range.
    assert torch.equal(ds.images[:, 0], ds.images[:, 2]) and ds.images.max() == 255
    counts = ds.counts()
    assert all(counts["test"][c] >= 30 for c in ds.classes)  # stratified
    h = _split_hashes(ds)
    assert not (h["train"] & h["test"]) and not (h["train"] & h["val"])
    assert ds.manifest()[0].keys() == {"path", "label", "class", "split", "sha256", "width",
                                       "height"}


def test_splits_are_fixed_by_the_seed():
    a = load_dataset(DataConfig("digits", image_size=16, seed=0))
    b = load_dataset(DataConfig("digits", image_size=16, seed=0))
    c = load_dataset(DataConfig("digits", image_size=16, seed=1))
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert [r.split for r in a.records] == [r.split for r in b.records]


def test_imagefolder_flat_layout(imagefolder):
    ds = load_dataset(DataConfig(f"imagefolder:{imagefolder}", image_size=24))
    assert ds.classes == ["daisy", "rose", "tulip"]
    assert ds.images.shape == (33, 3, 24, 24)
    assert all(len(ds.indices(s)) > 0 for s in SPLITS)
    r = ds.records[0]
    assert r.path == "daisy/daisy_0.png" and (r.width, r.height) == (48, 48)
    assert len(r.sha256) == 64


def test_imagefolder_split_layout(tmp_path):
    write_imagefolder(tmp_path / "d" / "train", {"a": 8, "b": 8}, seed=1)
    write_imagefolder(tmp_path / "d" / "test", {"a": 2, "b": 3}, seed=2, ext=".jpg")
    ds = load_dataset(DataConfig(f"imagefolder:{tmp_path / 'd'}", image_size=16))
    n = {s: len(ds.indices(s)) for s in SPLITS}
    assert n["test"] == 5 and n["val"] == 2 and n["train"] == 14  # val carved from train
    assert {r.path.split("/")[0] for r in ds.records if r.split == "test"} == {"test"}


def test_identical_images_never_straddle_carved_splits(tmp_path):
    root = write_imagefolder(tmp_path / "d", {"a": 10, "b": 10})
    for i in range(10):  # every "b" image duplicated under another name
        (root / "b" / f"copy_{i}.png").write_bytes((root / "b" / f"b_{i}.png").read_bytes())
    ds = load_dataset(DataConfig(f"imagefolder:{root}", image_size=16, seed=3))
    h = _split_hashes(ds)
    for a, b in [("train", "test"), ("train", "val"), ("val", "test")]:
        assert not h[a] & h[b]


@pytest.mark.parametrize("break_it,match", [
    (lambda r: (r / "rose" / "rose_3.png").write_bytes(
        (r / "rose" / "rose_3.png").read_bytes()[:200]),
     r"corrupt or unreadable image .*rose_3\.png"),
    (lambda r: (r / "rose" / "notes.txt").write_text("hello"), r"not an image file: .*notes\.txt"),
    (lambda r: (r / "lily").mkdir(), r"empty class folder: .*lily"),
    (lambda r: (r / "labels.csv").write_text("x"), r"unexpected file .*labels\.csv"),
    (lambda r: (r / "tulip" / "fake.jpg").write_bytes(b"\xff\xd8garbage"), r"fake\.jpg"),
])
def test_imagefolder_bad_input_names_the_file(imagefolder, break_it, match):
    break_it(imagefolder)
    with pytest.raises(DataError, match=match):
        load_dataset(DataConfig(f"imagefolder:{imagefolder}", image_size=16))


def test_hidden_files_are_ignored(imagefolder):
    (imagefolder / ".DS_Store").write_bytes(b"\0\0")
    (imagefolder / "rose" / ".thumbs").write_bytes(b"\0")
    assert len(load_dataset(DataConfig(f"imagefolder:{imagefolder}")).records) == 33


def test_bad_sources():
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_dataset(DataConfig("mnist"))
    with pytest.raises(ConfigError, match="digits dataset takes no path"):
        load_dataset(DataConfig("digits:/tmp"))
    with pytest.raises(ConfigError, match="needs a path"):
        load_dataset(DataConfig("imagefolder"))
    with pytest.raises(DataError, match="image folder not found"):
        load_dataset(DataConfig("imagefolder:/definitely/not/here"))
    with pytest.raises(ConfigError, match="image_size"):
        DataConfig(image_size=2)


def _fake_cifar(root: Path, fmt: str, per_batch: int = 20) -> None:
    rng = np.random.default_rng(0)
    folder = root / f"cifar-10-batches-{fmt}"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [i % 10 for i in range(per_batch)]
        if fmt == "py":
            with open(folder / name, "wb") as f:
                pickle.dump({"data": data, "labels": labels, "batch_label": name}, f, protocol=2)
        else:
            rows = np.concatenate([np.array(labels, dtype=np.uint8)[:, None], data], axis=1)
            rows.tofile(folder / f"{name}.bin")


@pytest.mark.parametrize("fmt", ["py", "bin"])
def test_cifar10_local_files(tmp_path, fmt):
    _fake_cifar(tmp_path, fmt)
    ds = load_dataset(DataConfig(f"cifar10:{tmp_path}", image_size=32))
    assert ds.images.shape == (120, 3, 32, 32) and ds.classes[3] == "cat" and ds.flip
    n = {s: len(ds.indices(s)) for s in SPLITS}
    assert n == {"train": 90, "val": 10, "test": 20}  # test as given, val carved from train


def test_cifar10_missing_or_malicious(tmp_path):
    with pytest.raises(DataError, match="CIFAR-10 not found.*--download"):
        load_dataset(DataConfig(f"cifar10:{tmp_path}"))
    _fake_cifar(tmp_path, "py")

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, ("touch pwned",))

    with open(tmp_path / "cifar-10-batches-py" / "data_batch_2", "wb") as f:
        pickle.dump({"data": Evil(), "labels": [0]}, f)
    with pytest.raises(DataError, match=r"data_batch_2.*refusing to load posix\.system"):
        load_dataset(DataConfig(f"cifar10:{tmp_path}"))
    bad = tmp_path / "b"
    _fake_cifar(bad, "bin")
    (bad / "cifar-10-batches-bin" / "test_batch.bin").write_bytes(b"\0" * 100)
    with pytest.raises(DataError, match="test_batch.bin.*3073"):
        load_dataset(DataConfig(f"cifar10:{bad}"))


def test_device_loader_batches_and_augmentation():
    ds = load_dataset(DataConfig("digits", image_size=32))
    t = BatchTransform(32, (0.5,) * 3, (0.5,) * 3, crop_pad=4, flip=False)
    train = make_loader(ds, "train", t, 64, train=True, seed=0)
    assert isinstance(train, DeviceLoader) and len(train) == 1295 // 64
    batches = list(train)
    assert all(x.shape == (64, 3, 32, 32) for x, _ in batches)
    assert batches[0][0].min() >= -1 and batches[0][0].max() <= 1
    again = [y for _, y in make_loader(ds, "train", t, 64, train=True, seed=0)]
    assert all(torch.equal(a, b) for a, (_, b) in zip(again, batches))
    ev = make_loader(ds, "test", BatchTransform(32, (0.5,) * 3, (0.5,) * 3), 100)
    assert sum(len(y) for _, y in ev) == 359
    assert torch.equal(torch.cat([y for _, y in ev]), ds.labels("test"))


def test_random_crop_is_a_shifted_window():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float).view(2, 1, 6, 6) + 1
    out = random_crop(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for i in range(2):  # each crop is a window of the zero-padded image
        padded = torch.nn.functional.pad(x[i], (2, 2, 2, 2))
        assert any(torch.equal(out[i], padded[:, a:a + 6, b:b + 6])
                   for a in range(5) for b in range(5))


def test_streaming_loader_matches_resident(imagefolder):
    cfg = dict(source=f"imagefolder:{imagefolder}", image_size=24)
    resident = load_dataset(DataConfig(**cfg))
    streamed = load_dataset(DataConfig(**cfg, max_resident_bytes=0))
    assert streamed.images is None and streamed.fingerprint() == resident.fingerprint()
    t = BatchTransform(24, (0.5,) * 3, (0.25,) * 3)
    a = make_loader(resident, "train", t, 8)
    b = make_loader(streamed, "train", t, 8, workers=0)
    assert isinstance(b, StreamingLoader)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(ya, yb) and torch.allclose(xa, xb)


def test_decode_image_resizes_shorter_side_and_crops(tmp_path):
    from PIL import Image

    img = photo_crops(1, size=60)[0][:40]  # 60 wide, 40 high
    Image.fromarray(img).convert("L").save(tmp_path / "g.png")
    x, w, h = decode_image(tmp_path / "g.png", 20)
    assert x.shape == (3, 20, 20) and (w, h) == (60, 40) and torch.equal(x[0], x[1])


def test_survey_describes_the_dataset_load_dataset_gives(imagefolder):
    from archft.data.survey import survey

    config = DataConfig(source=f"imagefolder:{imagefolder}", image_size=24)
    s, ds = survey(config), load_dataset(config)
    assert s.fingerprint() == ds.fingerprint() and s.counts() == ds.counts()
    (imagefolder / "rose" / "broken.png").write_bytes(b"not an image")
    s = survey(config)  # the unreadable file is a row, left out of fingerprint and counts
    assert sum(not r["readable"] for r in s.rows) == 1
    assert s.counts() == ds.counts()


def test_few_shot_keeps_n_training_images_per_class_and_every_eval_image(tmp_path):
    from archft.data.survey import materialize, survey

    full = load_dataset(DataConfig("photos", 32))
    few = load_dataset(DataConfig("photos", 32, train_per_class=7))
    assert all(n == 7 for n in few.counts()["train"].values())
    assert few.counts()["val"] == full.counts()["val"]
    assert few.counts()["test"] == full.counts()["test"]
    assert len(few.images) == len(few.records) == sum(sum(c.values())
                                                     for c in few.counts().values())
    # The materialised full set, loaded few-shot, keeps the same images; the survey agrees.
    folder = materialize(full, tmp_path / "photos")
    config = DataConfig(f"imagefolder:{folder}", 32, train_per_class=7)
    loaded = load_dataset(config)
    assert kept_images(loaded) == kept_images(few)
    assert kept_images(load_dataset(DataConfig("photos", 32, train_per_class=8))) != \
        kept_images(few)
    assert survey(config).fingerprint() == loaded.fingerprint()
    with pytest.raises(ConfigError, match="train_per_class"):
        DataConfig("photos", train_per_class=0)


@pytest.mark.parametrize("task", ["photos", "textures"])
def test_patch_tasks_are_fixed_by_the_seed_and_never_share_a_patch(task):
    from archft.data.tasks import TASKS, make_patches

    classes, images, labels, splits = make_patches(task, 32, seed=0)
    spec = TASKS[task]
    assert classes == list(spec.sources)
    assert len(images) == len(classes) * sum(spec.per_split.values())
    again = make_patches(task, 32, seed=0)[1]
    assert np.array_equal(images, again) and not np.array_equal(images, make_patches(
        task, 32, seed=1)[1])
    ds = load_dataset(DataConfig(task, 32))
    assert [r.split for r in ds.records] == splits  # the tiles' splits are kept
    hashes = {s: {r.sha256 for r in ds.records if r.split == s} for s in ("train", "val", "test")}
    assert not hashes["train"] & hashes["test"] and not hashes["train"] & hashes["val"]


def test_a_patch_task_can_be_given_more_patches_of_another_size():
    from archft.data.tasks import TASKS

    spec = TASKS["textures"]
    sized = load_dataset(DataConfig("textures", 32, patches=[4, 2, 3], patch_side=[0.015, 0.03]))
    counts = sized.counts()
    assert [set(counts[s].values()) for s in ("train", "val", "test")] == [{4}, {2}, {3}]
    assert TASKS["textures"] is spec  # the registered task is not changed
    own = load_dataset(DataConfig("textures", 32, patches=[4, 2, 3]))
    # Same tiles and draws, other patch sides: other images.
    assert [r.split for r in own.records] == [r.split for r in sized.records]
    assert not torch.equal(own.images, sized.images)
    assert DataConfig("textures", patches=[4, 2, 3]).to_dict()["patches"] == [4, 2, 3]
    for bad in ([4, 2], [4, 2, 0], [4.0, 2, 3]):
        with pytest.raises(ConfigError, match="patches must be three positive integers"):
            DataConfig("textures", patches=bad)
    for bad in ([0.2, 0.1], [0, 0.1], [0.1, 1.5], [0.1]):
        with pytest.raises(ConfigError, match="patch_side must be two fractions"):
            DataConfig("photos", patch_side=bad)
    with pytest.raises(ConfigError, match="apply to the patch tasks"):
        DataConfig("digits", patches=[4, 2, 3])
