"""Export a DMSL model to ONNX for use outside the app.

Writes ``boundary.onnx`` (M_b: image -> B = [x, y, w, h], normalised) and ``landmark.onnx``
(M_l: blacked-out face crop -> 136 normalised coordinates, x0 y0 x1 y1 ...), each with input
``image`` of shape (batch, 1, S, S) float32 - the pre-processed view of
:mod:`dmsl_core.preprocess` (luma, square view, 1st/99th-percentile normalisation) - and an
``onnx.json`` with the configuration, the input size and the model card. The pipeline around the
models (coarse-to-fine boxes, blackout, mapping back to pixels) stays in Python
(:class:`dmsl_core.pipeline.Predictor`); the ONNX files are the two networks.

With ``check=True`` and ONNX Runtime installed, both files are run on random inputs and compared
with PyTorch; the maximum absolute difference is reported and must stay within ``atol``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, atomic_write_text


class OnnxUnavailable(RuntimeError):
    pass


def export_model(model, out, size: int, opset: int = 17) -> None:
    """One network (M_b or M_l) to ONNX: input ``image`` (batch, 1, S, S) float32, output ``coords``
    (batch, 4 or 136), dynamic batch. ``out``: a path or a binary file object (the onnxruntime
    speed option of the Predictor exports in memory)."""
    import copy
    import warnings

    import torch
    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError:
        raise OnnxUnavailable("ONNX export needs the onnx package: pip install 'dmsl-studio[onnx]'") from None
    m = copy.deepcopy(model).float().cpu().eval().to(memory_format=torch.contiguous_format)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.rand(1, 1, size, size),), out, dynamo=False, input_names=["image"],
                          output_names=["coords"], dynamic_axes={"image": {0: "batch"}, "coords": {0: "batch"}},
                          opset_version=opset)


def export_onnx(weights, out_dir: str | os.PathLike, check: bool = True, atol: float = 1e-4,
                opset: int = 17, batch: int = 2, seed: int = 0) -> dict:
    """Export ``weights`` (run folder, .safetensors or shipped name) into ``out_dir``; returns a
    summary: ``files``, ``input_size``, ``check`` ({model: max abs difference}, or the reason it
    was skipped)."""
    import torch

    from .weights import load_weights

    cfg, mb, ml, card, path = load_weights(weights)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    S = cfg.input_size
    files = {}
    for name, model in (("boundary", mb), ("landmark", ml)):
        model = model.float().eval()
        dest = out / f"{name}.onnx"
        with atomic_path(dest, suffix=".onnx") as tmp:
            export_model(model, tmp, S, opset)
        files[name] = str(dest)
    result: dict = {"files": files, "input_size": S, "config": cfg.name, "weights": str(path)}
    if check:
        try:
            import onnxruntime as ort
        except ImportError:
            result["check"] = "skipped: onnxruntime is not installed (pip install onnxruntime)"
        else:
            rng = np.random.default_rng(seed)
            diffs = {}
            for name, model in (("boundary", mb), ("landmark", ml)):
                x = rng.random((batch, 1, S, S), dtype=np.float32)
                sess = ort.InferenceSession(files[name], providers=["CPUExecutionProvider"])
                got = sess.run(None, {"image": x})[0]
                with torch.inference_mode():
                    want = model(torch.from_numpy(x)).numpy()
                diffs[name] = float(np.abs(got - want).max())
            result["check"] = diffs
            bad = {k: v for k, v in diffs.items() if not v <= atol}
            if bad:
                raise ValueError(f"ONNX export of {path} differs from PyTorch by {bad} (tolerance {atol})")
    atomic_write_text(out / "onnx.json", json.dumps({**result, "card": card, "model_config": cfg.to_dict()},
                                                    indent=2, default=str))
    result["files"]["info"] = str(out / "onnx.json")
    return result
