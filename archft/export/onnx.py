"""ONNX export and onnxruntime evaluation of a model directory.

The exported graph has a dynamic batch axis and carries what a client with only onnxruntime
needs, as metadata_props:
    archft.preprocessing  {"size": [H, W], "mean": [...], "std": [...], "resize": "bilinear"}:
                          RGB pixels scaled to 0..1, resized to size, then (x - mean) / std
    archft.classes        JSON list of class names, indexed by the output logits
    archft.architecture   the architecture.json it implements
`evaluate_onnx` preprocesses with those values alone, so the report checks what a client gets.
"""

from __future__ import annotations

import io
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from archft.core import rundirs
from archft.core.errors import ConfigError
from archft.core.io import atomic_write_bytes, atomic_write_json
from archft.data import DataConfig, Dataset
from archft.data.loaders import BatchTransform
from archft.engine.features import encode_batch_size
from archft.finetune import load_model

OPSET = 17


def export_onnx(net: torch.nn.Module, path: str | Path, size: int, metadata: dict[str, str]
                ) -> Path:
    """Exports `net` (CPU, eval) to ONNX with a dynamic batch axis, checks it, writes atomically.

    Args:
        net: the model.
        path: destination `.onnx` file.
        size: input side (the spatial size is fixed, the batch is not).
        metadata: metadata_props to attach.

    Returns:
        The path.
    """
    import onnx

    net = net.cpu().eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # TF-SAME padding reads the input size while tracing: constant for a fixed input size,
        # which the preprocessing metadata pins, so the tracer's warnings are expected.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(net, (torch.zeros(1, 3, size, size),), buf, dynamo=False,
                          opset_version=OPSET, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    model = onnx.load_model_from_string(buf.getvalue())
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model, full_check=True)
    return atomic_write_bytes(path, model.SerializeToString())


def read_preprocessing(session) -> tuple[dict, list[str]]:
    """(preprocessing, class names) from an onnxruntime session's metadata."""
    meta = session.get_modelmeta().custom_metadata_map
    if "archft.preprocessing" not in meta:
        raise ConfigError("the ONNX model carries no archft.preprocessing metadata")
    return json.loads(meta["archft.preprocessing"]), json.loads(meta.get("archft.classes", "[]"))


def preprocess(images: np.ndarray, pre: dict) -> np.ndarray:
    """What a client does with the metadata: uint8 RGB (N, H, W, 3) -> float32 (N, 3, h, w)."""
    from PIL import Image

    h, w = pre["size"]
    if images.shape[1:3] != (h, w):
        images = np.stack([np.asarray(Image.fromarray(im).resize((w, h), Image.BILINEAR))
                           for im in images])
    x = images.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    mean = np.asarray(pre["mean"], dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(pre["std"], dtype=np.float32).reshape(1, 3, 1, 1)
    return (x - mean) / std


LATENCY_SECONDS = 2.0  # per measurement: slow ones stop early rather than cost a minute


def _median_ms(fn, repeats: int, seconds: float = LATENCY_SECONDS, least: int = 5) -> float:
    """Median wall time of `fn` in ms over `repeats` runs after one warm-up run; fewer (but
    at least `least`) once the runs have taken `seconds` in all."""
    fn()
    times = []
    while len(times) < repeats and (len(times) < least or sum(times) < seconds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def export_model(model_dir: str | Path, out: str | Path, image_size: int, classes: list[str]
                 ) -> Path:
    """Exports a model directory to `out/model.onnx` with its preprocessing, class names and
    architecture in the metadata.

    Raises:
        ConfigError: the model was trained at another image size or on other classes.
    """
    net, arch, metrics = load_model(model_dir)
    if metrics.get("image_size", image_size) != image_size:
        raise ConfigError(f"{model_dir} was trained at {metrics['image_size']} px, not "
                          f"{image_size}")
    if metrics.get("classes", classes) != classes:
        raise ConfigError(f"{model_dir} was trained on classes {metrics['classes']}, the "
                          f"dataset has {classes}")
    pre = arch.space.spec.preprocessing
    preprocessing = {"size": [image_size, image_size], "mean": list(pre.mean),
                     "std": list(pre.std), "resize": "bilinear", "scale": "rgb / 255"}
    return export_onnx(net, Path(out) / rundirs.ONNX.model, image_size, {
        "archft.preprocessing": json.dumps(preprocessing),
        "archft.classes": json.dumps(classes),
        "archft.architecture": json.dumps(arch.to_dict()),
    })


def evaluate_onnx(path: str | Path, model_dir: str | Path, dataset: Dataset,
                  latency_repeats: int = 20) -> dict:
    """Evaluates an exported model with onnxruntime on the test split, against torch.

    onnxruntime preprocesses with the ONNX metadata alone (what a client gets); torch runs the
    model directory the file was exported from.

    Returns:
        Test accuracy of onnxruntime (`onnx_test_accuracy`) and of torch (`test_accuracy`),
        their top-1 agreement, the largest logit difference, per-class accuracy (onnxruntime)
        and the median CPU latency of both at batch 1 and 64 (over `latency_repeats` runs, or
        fewer but at least 5 once they have taken `LATENCY_SECONDS`).
    """
    import onnxruntime as ort

    net, arch, _ = load_model(model_dir)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    meta_pre, classes = read_preprocessing(session)
    if classes != dataset.classes:
        raise ConfigError(f"{path} labels classes {classes}, the dataset {dataset.name} has "
                          f"{dataset.classes}")

    images = dataset.split_images("test")  # uint8 (N, 3, h, w)
    labels = dataset.labels("test").numpy()
    x_np = preprocess(images.permute(0, 2, 3, 1).numpy(), meta_pre)
    ort_logits = np.concatenate([session.run(None, {"input": x_np[i:i + 256]})[0]
                                 for i in range(0, len(x_np), 256)])
    pre = arch.space.spec.preprocessing
    tf = BatchTransform(meta_pre["size"][0], pre.mean, pre.std)
    bs = encode_batch_size(tf.image_size, torch.device("cpu"))
    with torch.no_grad():
        torch_logits = torch.cat([net(tf(images[i:i + bs])) for i in range(0, len(images), bs)])
    torch_logits = torch_logits.numpy()
    ort_pred, torch_pred = ort_logits.argmax(1), torch_logits.argmax(1)

    batch1, batch64 = x_np[:1], np.resize(x_np, (64, *x_np.shape[1:]))
    with torch.no_grad():
        latency = {
            "onnxruntime_batch1_ms": _median_ms(lambda: session.run(None, {"input": batch1}),
                                                latency_repeats),
            "torch_batch1_ms": _median_ms(lambda: net(torch.from_numpy(batch1)), latency_repeats),
            "onnxruntime_batch64_ms": _median_ms(lambda: session.run(None, {"input": batch64}),
                                                 latency_repeats),
            "torch_batch64_ms": _median_ms(lambda: net(torch.from_numpy(batch64)),
                                           latency_repeats),
        }
    return {
        "model": str(path), "images": int(len(labels)), "classes": classes,
        "onnx_test_accuracy": float((ort_pred == labels).mean()),
        "test_accuracy": float((torch_pred == labels).mean()),
        "onnx_top1_agreement": float((ort_pred == torch_pred).mean()),
        "onnx_max_logit_difference": float(np.abs(ort_logits - torch_logits).max()),
        "per_class_accuracy": {c: float((ort_pred[labels == i] == i).mean())
                               for i, c in enumerate(classes) if (labels == i).any()},
        "latency": {k: round(v, 3) for k, v in latency.items()},
        "threads": torch.get_num_threads(), "opset": OPSET,
        "onnxruntime": ort.__version__, "torch": torch.__version__,
        "preprocessing": meta_pre,
    }


def batch1_latency(paths: dict[str, str | Path], repeats: int = 50) -> dict[str, float]:
    """onnxruntime batch-1 latency (median ms) of several ONNX files, measured side by side in
    one process: the runs alternate between the files, so that a slower moment of the machine
    falls on all of them alike.

    Args:
        paths: name -> `.onnx` file exported by `export_model`.
        repeats: runs of each file after one warm-up run each.

    Returns:
        name -> median milliseconds.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    runs = {}
    for name, path in paths.items():
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        pre, _ = read_preprocessing(session)
        x = np.zeros((1, 3, *pre["size"]), dtype=np.float32)
        runs[name] = (session, {session.get_inputs()[0].name: x})
        session.run(None, runs[name][1])
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, (session, feed) in runs.items():
            t = time.perf_counter()
            session.run(None, feed)
            times[name].append(time.perf_counter() - t)
    return {name: round(1000 * float(np.median(ts)), 3) for name, ts in times.items()}


def run_export(model_dir: str | Path, dataset: Dataset, data: DataConfig, out: str | Path,
               latency_repeats: int = 20) -> dict:
    """Exports a model directory to `out/model.onnx` and evaluates it with onnxruntime; the
    report (`evaluate_onnx`) is also written to `out/onnx_report.json`.

    Returns:
        The report.
    """
    path = export_model(model_dir, out, data.image_size, dataset.classes)
    report = evaluate_onnx(path, model_dir, dataset, latency_repeats)
    atomic_write_json(Path(out) / rundirs.ONNX.report, report)
    return report
