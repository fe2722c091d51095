"""``dmsl export-onnx``: M_b and M_l as ONNX files."""
from __future__ import annotations

import sys


def cmd_export_onnx(args) -> int:
    from ..models.onnx_export import export_onnx
    res = export_onnx(args.weights, args.out, check=not args.no_check, atol=args.atol)
    print(f"{res['files']['boundary']}\n{res['files']['landmark']}")
    chk = res.get("check")
    print(f"ONNX Runtime check: {chk}" if isinstance(chk, str) else
          "ONNX Runtime check: max |difference| " + ", ".join(f"{k} {v:.2e}" for k, v in chk.items()),
          file=sys.stderr)
    return 0


def register(sub) -> None:
    p = sub.add_parser("export-onnx", help="export M_b and M_l to ONNX (checked against ONNX Runtime when installed)")
    p.add_argument("--weights", default=None, help="run folder, .safetensors file or shipped model name")
    p.add_argument("--out", required=True, help="folder for boundary.onnx, landmark.onnx, onnx.json")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime comparison")
    p.add_argument("--atol", type=float, default=1e-4, help="largest allowed difference from PyTorch")
    p.set_defaults(func=cmd_export_onnx)
