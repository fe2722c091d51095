"""``dmsl models``: the model configurations and the shipped models."""
from __future__ import annotations


def cmd_models(args) -> int:
    from ..models import get_config, list_configs, create_models
    from ..models.weights import shipped_models
    print(f"{'configuration':<16} {'widths':<24} {'hidden':>6} {'input':>5} {'params M_b':>11} {'params M_l':>11}")
    for name in list_configs():
        c = get_config(name)
        mb, ml = create_models(c)
        pb = sum(p.numel() for p in mb.parameters())
        pl = sum(p.numel() for p in ml.parameters())
        print(f"{name:<16} {'-'.join(map(str, c.widths)):<24} {c.hidden:>6} {c.input_size:>5} {pb:>11,} {pl:>11,}")
        if args.verbose:
            print(f"    {c.description}")
    shipped = shipped_models()
    print(f"\nshipped models: {', '.join(shipped) if shipped else 'none'}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("models", help="list model configurations and shipped models")
    p.set_defaults(func=cmd_models)
