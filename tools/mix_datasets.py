"""Join dataset folders into one training folder (files hard-linked where possible, else copied).

    python tools/mix_datasets.py OUT SRC[:SUBJECTS[:K]] [SRC[:SUBJECTS[:K]] ...]

Each SRC is a dataset folder (manifest.csv); ``:SUBJECTS`` keeps only those subjects: a comma list
or ``A..B`` ranges of the natural sort order (``s016..s050``: the generator's fold-0 training
subjects); ``:K`` then keeps every K-th of them. Subjects are prefixed with the source folder's
name so two sources never share one.
Rows whose files are missing are reported and left out. The sources are never modified.

The shipped model's training mix (see docs/real-data.md)::

    python tools/mix_datasets.py /work/data/mix-r2 /work/data/real300w_th /work/data/synth50:s016..s050:2
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dmsl_core.data.folder import PairRecord, read_manifest, write_manifest  # noqa: E402
from dmsl_core.data.names import natural_key  # noqa: E402


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _select(subjects: list[str], spec: str) -> set[str]:
    keep: set[str] = set()
    order = sorted(set(subjects), key=natural_key)
    for part in spec.split(","):
        if ".." in part:
            a, b = part.split("..", 1)
            ka, kb = natural_key(a), natural_key(b)
            keep |= {s for s in order if ka <= natural_key(s) <= kb}
        elif part:
            keep.add(part)
    return keep


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("sources", nargs="+")
    args = p.parse_args()
    out = Path(args.out)
    if (out / "manifest.csv").exists():
        print(f"{out}: already holds a manifest.csv; choose an empty folder", file=sys.stderr)
        return 2
    rows: list[PairRecord] = []
    for spec in args.sources:
        path, _, subj = spec.partition(":")
        subj, _, every = subj.partition(":")
        src = Path(path)
        recs = read_manifest(src)
        keep = _select([r.subject for r in recs], subj) if subj else None
        order = sorted({r.subject for r in recs if keep is None or r.subject in keep}, key=natural_key)
        order = set(order[::max(1, int(every or 1))])
        tag = src.name
        n = 0
        for r in recs:
            if r.subject not in order:
                continue
            new = PairRecord(subject=f"{tag}-{r.subject}", variation=r.variation, th_format=r.th_format,
                             registered=r.registered)
            try:
                for field in ("vis", "th", "landmarks", "th_landmarks"):
                    rel = getattr(r, field)
                    if rel:
                        _link(src / rel, out / tag / rel)
                        setattr(new, field, f"{tag}/{rel}")
            except OSError as exc:
                print(f"{src}: row of {r.subject}/{r.variation} left out ({exc})", file=sys.stderr)
                continue
            rows.append(new)
            n += 1
        print(f"{src}: {n} rows from {len(order)} subjects")
    write_manifest(out, rows)
    print(f"{out}: {len(rows)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
