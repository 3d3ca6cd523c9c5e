"""Images/s of a supernet training step vs a plain training step of its materialised subnet.

Same batch, same device, one process; the two are timed in alternating blocks so that machine
drift hits both. Goal (issue 4): supernet >= 0.9x the subnet on GPU, >= 0.85x on CPU.

    python bench/throughput.py --base efficientnet_lite0 --scope small --image-size 32
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
import torch.nn.functional as F

from archft.engine import autocast, resolve_device, to_device
from archft.nas import build_supernet
from archft.space import SearchSpace


def step_fn(net, params, x, y, device, amp):
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)

    def step():
        net.train()
        with autocast(device, amp):
            loss = F.cross_entropy(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def timed(step, n: int, device) -> float:
    """Seconds for n steps (CUDA events on GPU: no host timing of queued kernels)."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(n):
            step()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1000
    t = time.perf_counter()
    for _ in range(n):
        step()
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base", default="efficientnet_lite0")
    p.add_argument("--scope", default="small")
    p.add_argument("--weights", default="none")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=10, help="steps per timed block")
    p.add_argument("--blocks", type=int, default=5)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    space = SearchSpace.from_base(args.base, args.scope, weights=args.weights, num_classes=10)
    supernet = to_device(build_supernet(space), device)
    arch = [len(d.candidates) - 1 for d in space.decisions]  # largest kernels
    supernet.set_architecture(arch)
    subnet = to_device(supernet.materialize(arch), device)
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(10, (args.batch_size,), device=device)
    steps = {"supernet": step_fn(supernet, list(supernet.trainable_parameters()), x, y, device,
                                 True),
             "subnet": step_fn(subnet, [q for q in subnet.parameters() if q.requires_grad], x,
                               y, device, True)}
    for s in steps.values():  # warm-up
        timed(s, 3, device)
    totals = {k: 0.0 for k in steps}
    for _ in range(args.blocks):
        for k, s in steps.items():
            totals[k] += timed(s, args.steps, device)
    n = args.blocks * args.steps * args.batch_size
    ips = {k: n / t for k, t in totals.items()}
    result = {"base": args.base, "scope": args.scope, "image_size": args.image_size,
              "batch_size": args.batch_size, "device": str(device),
              "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
              "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
              "machine": platform.processor() or platform.machine(),
              "supernet_img_s": round(ips["supernet"], 1), "subnet_img_s": round(ips["subnet"], 1),
              "ratio": round(ips["supernet"] / ips["subnet"], 3)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
