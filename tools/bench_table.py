"""Markdown tables from a ``dmsl bench --json`` report (what the README's speed section shows).

    python tools/bench_table.py bench.json
"""
from __future__ import annotations

import json
import sys


def fmt(v, nd=1):
    return "—" if v is None else f"{v:.{nd}f}"


def fmt_spread(v, sp, nd=1):
    """The median, and the min-max of its repeats when the report has them (schema dmsl-bench/3)."""
    return fmt(v, nd) if not sp else f"{fmt(v, nd)} [{fmt(sp['min'], nd)}–{fmt(sp['max'], nd)}]"


def main(path: str) -> int:
    r = json.loads(open(path, encoding="utf-8").read())
    d = r.get("dlib") or {}
    fr = r["frames"]
    print(f"{fr['n']} demo frames {fr['size'][0]}×{fr['size'][1]}, {r['threads']} threads, torch {r['machine']['torch']}, "
          + (f"OpenMP wait {r['threading'].get('omp_wait_policy')}, " if r.get("threading") else "") +
          f"{r['machine']['cpu_count']} CPUs ({r['created']})\n")
    bs = sorted({b for e in r["pipeline"] for b in e["fps"]}, key=int)
    head = "| model | device | params M_b / M_l | " + " | ".join(f"M_l ms/img b{b}" for b in bs) + " | " + \
        " | ".join(f"pipeline fps b{b}" for b in bs) + " | × Dlib (b1) | peak RSS MB |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for e in r["pipeline"]:
        name = f"`{e['model']}`" + (" (shipped)" if e["kind"] == "shipped" else "")
        ratio = (e.get("ratio_vs_dlib") or {}).get(bs[0])
        print(f"| {name} | {e['device']} | {e['params_boundary'] / 1e6:.2f} M / {e['params_landmark'] / 1e6:.2f} M | "
              + " | ".join(fmt(e["ms_per_image"][b], 2) for b in bs) + " | "
              + " | ".join(fmt_spread(e["fps"][b], (e.get("spread") or {}).get("fps", {}).get(b)) for b in bs)
              + f" | {fmt(ratio, 2)} | {fmt(e.get('peak_rss_mb'), 0)} |")
    if d.get("available"):
        print(f"| Dlib HOG detector + 68-point predictor | cpu | — | | | {fmt(d['fps'])} (one frame per call) | | 1.00 | "
              f"{fmt(d.get('peak_rss_mb'), 0)} |")
        print(f"\nDlib found a face in {d['detected']} of {d['frames']} frames ({d['ms_per_frame']:.1f} ms per frame).")
    else:
        print(f"\nDlib: {d.get('reason')}")
    if r.get("options"):
        print("\n| speed option (shipped model, one frame per call) | threads | fps | × baseline | max landmark difference (px) |")
        print("|---|---|---|---|---|")
        for o in r["options"]:
            if o.get("error"):
                print(f"| {o['option']} | {o['threads']} | unavailable: {o['error'][:80]} | | |")
            else:
                name = o["option"] + (" (changes the results by design)" if o.get("changes_results") else "")
                print(f"| {name} | {o['threads']} | {fmt_spread(o['fps'], o.get('fps_spread'))} | {fmt(o['ratio'], 2)} | "
                      f"{'—' if o['max_diff_px'] is None else o['max_diff_px']} |")
    if r.get("contention"):
        print("\n| one busy core beside (ms per frame, one frame per call) | threads | quiet | busy | busy / quiet |")
        print("|---|---|---|---|---|")
        for c in r["contention"]:
            q, b, sp = c["quiet_ms"], c["busy_ms"], c["ratio_spread"]
            print(f"| `{c['model']}` {c['option']} | {c['threads']} | {fmt_spread(q['median'], q)} | "
                  f"{fmt_spread(b['median'], b)} | ×{fmt_spread(c['ratio'], sp, 2)} |")
    for k, t in (r.get("targets") or {}).items():
        print(f"\ntarget {k}: " + ", ".join(f"{a}={b}" for a, b in t.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
