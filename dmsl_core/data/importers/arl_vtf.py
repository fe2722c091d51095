"""The ARL-VTF preset: a ``metadata.csv`` lists every image with its camera, condition and subject."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Callable, Optional

from ..folder import DatasetError
from ..names import TH_WORDS, VIS_WORDS, label_spectrum, name_words, natural_key
from .common import ImportReport, PathLike, _prepare_dst, _safe
from .pairing import AnnotationIndex, Item, PairPlan, multi_annotations, rel_path, walk_files, write_plans
from .registry import register_preset

__all__ = ["ARL_CAMERA_VIS", "ARL_CAMERA_TH", "import_arl_vtf"]

#: ARL-VTF's camera models, besides the spectrum words of :mod:`dmsl_core.data.names`
ARL_CAMERA_VIS = ("basler",)
ARL_CAMERA_TH = ("boson", "flir")


def _camera_spectrum(camera: str) -> Optional[str]:
    return label_spectrum(camera, vis_extra=ARL_CAMERA_VIS, th_extra=ARL_CAMERA_TH)


@register_preset("arl-vtf")
def import_arl_vtf(src: PathLike, dst: PathLike, *, metadata: Optional[PathLike] = None,
                   registered: bool = False, overwrite: bool = False, th_u16_format: str = "u16_raw",
                   bounds_margin: float = 0.0, annotations: Optional[PathLike] = None,
                   progress: Optional[Callable[[int, int], None]] = None) -> ImportReport:
    """ARL-VTF: ``metadata.csv`` with columns ``camera, condition, subid, filepath``.

    ``filepath`` is relative to the metadata file's folder (or absolute). Visible vs thermal comes
    from the camera name (``lwir``/``thermal``/``boson``... vs ``rgb``/``vis``/``basler``...).
    Within a subject and condition, images pair by file stem without camera/spectrum words, the
    rest by sorted order. The variation is the condition. Not registered by default.
    """
    src, dst = Path(src), Path(dst)
    meta = Path(metadata) if metadata is not None else src / "metadata.csv"
    _prepare_dst(src, dst, overwrite)
    report = ImportReport(preset="arl-vtf", src=str(src), dst=str(dst))
    if not meta.is_file():
        raise DatasetError(f"{meta}: no metadata.csv (ARL-VTF lists its images there)")
    try:
        text = meta.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{meta}: cannot read ({exc})") from exc
    reader = csv.DictReader(io.StringIO(text))
    cols = {c.strip().lower(): c for c in (reader.fieldnames or [])}
    need = {"camera", "condition", "subid", "filepath"}
    if not need <= set(cols):
        raise DatasetError(f"{meta}: missing columns {sorted(need - set(cols))} (has {reader.fieldnames})")
    all_files = walk_files(src, exclude=dst)
    index = AnnotationIndex(src, all_files, extra=multi_annotations(annotations, report))
    groups: dict[tuple[str, str], dict[str, list[Item]]] = {}
    for line, row in enumerate(reader, start=2):
        cam, cond = row[cols["camera"]].strip(), row[cols["condition"]].strip()
        sub, fp = row[cols["subid"]].strip(), row[cols["filepath"]].strip()
        if not fp:
            report.add(f"{meta}:{line}", "empty filepath")
            continue
        path = Path(fp) if Path(fp).is_absolute() else meta.parent / fp
        spec = _camera_spectrum(cam)
        if spec is None:
            report.add(f"{meta}:{line}", f"camera {cam!r} is neither visible nor thermal; row left out")
            report.n_skipped += 1
            continue
        words = set(name_words(cam)) | VIS_WORDS | TH_WORDS
        bare = "_".join(t for t in name_words(path.stem) if t not in words) or path.stem
        item = Item(path, rel_path(path, src), spec, subject=sub or "unknown", variation=cond or "default",
                     key=bare, stem=bare)
        groups.setdefault((item.subject, item.variation), {"vis": [], "th": []})[spec].append(item)
    plans: list[PairPlan] = []
    for (sub, cond), g in sorted(groups.items(), key=lambda kv: (natural_key(kv[0][0]), kv[0][1])):
        vis = sorted(g["vis"], key=lambda it: natural_key(str(it.rel)))
        th = sorted(g["th"], key=lambda it: natural_key(str(it.rel)))
        tk: dict[str, list[Item]] = {}
        for t in th:
            tk.setdefault(t.key, []).append(t)
        pairs, lv = [], []
        used: set[int] = set()
        for v in vis:
            c = tk.get(v.key, [])
            if len(c) == 1 and id(c[0]) not in used:
                pairs.append((v, c[0]))
                used.add(id(c[0]))
            else:
                lv.append(v)
        lt = [t for t in th if id(t) not in used]
        if len(lv) == len(lt):
            pairs += list(zip(lv, lt))
        else:
            pairs += [(v, None) for v in lv] + [(None, t) for t in lt]
            report.n_unpaired += len(lv) + len(lt)
        for v, t in pairs:
            lead = v or t
            plans.append(PairPlan(subject=sub, variation=cond, key=f"{_safe(cond)}_{_safe(lead.key)}",
                                  vis=v.path if v else None, th=t.path if t else None,
                                  ann_vis=index.find(v.path, spectrum="vis") if v else None,
                                  ann_th=index.find(t.path, spectrum="th") if t else None,
                                  registered=registered))
    if report.n_unpaired:
        report.notes.append(f"{report.n_unpaired} image(s) have no partner of the other spectrum; "
                            "imported as single-spectrum records")
    return write_plans(plans, src, dst, report, th_u16_format=th_u16_format, bounds_margin=bounds_margin,
                       progress=progress)
