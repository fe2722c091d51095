"""``dmsl bench``: parameters, ms per image per model and pipeline frames per second.

Every figure is measured in this process on the same inputs (random weights: speed does not
depend on them). Ratios are given against the first configuration measured.
"""
from __future__ import annotations

import platform
import time
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from .device import describe_device, resolve_device
from .models import create_models, get_config
from .pipeline import Predictor


def _time(fn, repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def run_bench(configs: Optional[Sequence[str]] = None, batches: Sequence[int] = (1, 8), threads: int = 2,
              repeat: int = 10, device: str = "cpu", image_size: str = "640x512",
              printer: Callable[[str], None] = print) -> dict:
    configs = list(configs or ["dmsl-paper", "dmsl-compact"])
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    dev = resolve_device(device)
    w, h = (int(v) for v in image_size.lower().split("x"))
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    results = []
    try:
        for name in configs:
            cfg = get_config(name)
            mb, ml = create_models(cfg, seed=0)
            params = sum(p.numel() for p in ml.parameters())
            ml = ml.to(dev).eval()
            entry = {"config": name, "params_per_model": int(params),
                     "params_boundary": int(sum(p.numel() for p in mb.parameters())), "ms_per_image": {},
                     "pipeline_fps": {}}
            for b in batches:
                x = torch.rand(b, 1, cfg.input_size, cfg.input_size, device=dev)

                def fwd():
                    with torch.inference_mode():
                        ml(x)
                    if dev.type == "cuda":
                        torch.cuda.synchronize()
                sec = _time(fwd, repeat)
                entry["ms_per_image"][str(b)] = round(sec / b * 1000, 3)
            pred = Predictor(mb, ml, cfg, device=dev)
            for b in batches:
                frames = [frame] * b
                sec = _time(lambda: pred.predict(frames), max(3, repeat // 2), warmup=1)
                entry["pipeline_fps"][str(b)] = round(b / sec, 2)
            results.append(entry)
            printer(f"{name:<14} params/model {params / 1e6:6.2f}M  " + "  ".join(
                f"b{b}: {entry['ms_per_image'][str(b)]:8.2f} ms/img" for b in batches) + "  pipeline " + "  ".join(
                f"b{b}: {entry['pipeline_fps'][str(b)]:6.2f} fps" for b in batches))
    finally:
        torch.set_num_threads(prev_threads)
    base = results[0]
    for r in results:
        r["speed_ratio_vs_" + base["config"]] = {
            b: round(base["ms_per_image"][b] / r["ms_per_image"][b], 2) for b in r["ms_per_image"]}
    return {"device": str(dev), "device_name": describe_device(dev) if dev.type != "cpu" else f"CPU, {threads} threads",
            "threads": threads, "torch": torch.__version__, "machine": platform.machine(),
            "processor": platform.processor(), "frame_size": [w, h],
            "note": "ms_per_image: M_l forward only (M_b is the same size); pipeline_fps: M_b twice + blackout + "
                    "M_l with pre-processing, on a WxH RGB frame",
            "results": results}
