"""``dmsl run`` under torchrun: the frames of a recorded source sharded over the ranks, merged by rank 0
into the same CSV / JSONL one process writes.

Rank r takes frames [lo, hi) (:func:`dmsl_core.distributed.shard_range` over the frame count). It
first processes the ``warmup`` frames before lo with its own :class:`StreamProcessor` (results
dropped), so the frame-to-frame state (spectrum selector, One Euro filters, face-box tracks) is close
to what one process has at lo. Every rank records a fingerprint of that state at lo and after each of
its frames. Rank 0 then walks the boundaries in order: where the state one process would have at lo
(the previous share's end state) differs from rank r's warmed-up state, rank 0 re-runs frames from lo
with the right state until the fingerprints agree again (from there on rank r's rows are what one
process computes) - so the exports equal one process's, byte for byte, apart from the timings
(``no_timings``), whatever the settings; the warm-up only keeps the re-runs short. Each rank writes
its rows to ``OUT.rankR.part`` beside the first export (a shared folder when the ranks are on several
machines); rank 0 writes the exports atomically and removes the parts.

No printing here: the command line (``dmsl_core/commands/streams.py``) is told what happens through
``on_start`` / ``on_rerun`` and prints the returned :class:`ShardedRun`.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

#: what the refusals below suggest instead
ONE_PROCESS = "run it in one process (without torchrun)"


@dataclass
class ShardPlan:
    """What rank 0 knows before the work: the source's ``info``, the ``frames`` to process, the
    ``world_size``, the ``warmup`` frames per rank, the predictor and the StreamConfig."""
    info: dict
    frames: int
    world_size: int
    warmup: int
    predictor: Any
    config: Any


@dataclass
class ShardedRun:
    """Rank 0's result: ``frames`` processed, the slowest rank's ``seconds``, the warm-up frames of
    all ranks, the frames rank 0 re-ran at shard boundaries and the exports written."""
    frames: int
    world_size: int
    seconds: float
    warmup_frames: int
    rerun: int
    paths: list[str] = field(default_factory=list)


def default_warmup(info: dict) -> int:
    """Frames of warm-up per rank: 8 s of video at the source's frame rate (the selector's smoothed
    mean needs ~16 time constants, 0.4 s, to agree bit for bit), 30 frames without a frame rate."""
    fps = info.get("fps")
    return int(math.ceil(8.0 * float(fps))) if fps else 30


def _render(res, no_timings: bool) -> str:
    """One frame's CSV rows and JSONL line, as one JSON text (a line of a ``.part`` file)."""
    from .export import _json_default, result_rows
    if no_timings:
        res.timings_ms = {}
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(result_rows(res))
    line = json.dumps(res.to_dict(), default=_json_default, allow_nan=False)
    return json.dumps([buf.getvalue(), line])


def run_sharded(source: str, *, stream_config: Callable[[dict], Any], load_predictor: Callable[[Optional[str]], Any],
                homography=None, csv_path: Optional[str] = None, json_path: Optional[str] = None,
                max_frames: Optional[int] = None, warmup: Optional[int] = None, no_timings: bool = False,
                device: Optional[str] = "auto", threads: Optional[int] = None,
                on_start: Optional[Callable[[ShardPlan], None]] = None,
                on_rerun: Optional[Callable[[int, int, bool], None]] = None) -> Optional[ShardedRun]:
    """Process ``source`` (a URI of a recorded, seekable source) on this rank of the torchrun job and,
    on rank 0, merge every rank's share into ``csv_path`` / ``json_path``.

    ``stream_config(info)``: the StreamConfig for the source's info; ``load_predictor(device)``: the
    predictor, given the rank's device (None: let it choose). ``warmup`` None: :func:`default_warmup`.
    ``on_start(plan)`` (rank 0, before the work) and ``on_rerun(lo, last, converged)`` (rank 0, after
    re-running frames ``lo..last`` of a share) are told what happens. Returns rank 0's
    :class:`ShardedRun`, None on the other ranks. A live or unseekable source, or one without a frame
    count, is a ValueError."""
    from .distributed import init_from_env, shard_range, shutdown
    from .sources import open_source
    from .stream import StreamProcessor

    ctx = init_from_env(device)
    if threads:
        import torch
        torch.set_num_threads(threads)
    src = open_source(source, realtime=False, homography=homography)
    try:
        info = src.info
        n_total = info.get("frames")
        if info.get("live") or not getattr(src, "seekable", False) or not n_total:
            raise ValueError(f"{source}: a {'live ' if info.get('live') else ''}{info.get('kind')} source "
                             f"cannot be sharded under torchrun (only folders, video files and image sequences "
                             f"with a known frame count can); {ONE_PROCESS}")
        n = min(int(n_total), max_frames) if max_frames else int(n_total)
        lo, hi = shard_range(n, ctx.rank, ctx.world_size)
        if warmup is None:
            warmup = default_warmup(info)
        cfg = stream_config(info)
        predictor = load_predictor(str(ctx.device) if ctx.device is not None else None)
        processor = StreamProcessor(predictor, cfg)
        if ctx.is_main and on_start is not None:
            on_start(ShardPlan(info=info, frames=n, world_size=ctx.world_size, warmup=warmup,
                               predictor=predictor, config=cfg))
        first = csv_path or json_path
        part = f"{first}.rank{ctx.rank}.part" if first else None
        mine = _process_share(src, processor, lo, hi, max(0, lo - warmup), part, no_timings)
        mine["rank"] = ctx.rank
        shares = ctx.all_gather_object(mine)
        if not ctx.is_main:
            shutdown(ctx)
            return None
        fixed, rerun, usable = _fix_boundaries(shares, StreamProcessor(predictor, cfg), source, homography,
                                               no_timings, on_rerun)
        outs = [(kind, path) for kind, path in (("csv", csv_path), ("json", json_path)) if path]
        _merge(shares[:usable], fixed, outs, info, first)
        for sh in shares:
            if first:
                with contextlib.suppress(OSError):
                    os.unlink(f"{first}.rank{sh['rank']}.part")
        result = ShardedRun(frames=sum(sh["done"] for sh in shares[:usable]), world_size=ctx.world_size,
                            seconds=max(sh["seconds"] for sh in shares),
                            warmup_frames=sum(sh["warm"] for sh in shares), rerun=rerun,
                            paths=[path for _, path in outs])
        shutdown(ctx)
        return result
    finally:
        src.close()


def _process_share(src, processor, lo: int, hi: int, start: int, part: Optional[str], no_timings: bool) -> dict:
    """This rank's share: warm up from ``start``, then frames [lo, hi) into ``part``; the record the
    ranks gather (bounds, fingerprints, end state, warm-up frames, seconds)."""
    t0 = time.perf_counter()
    hashes: list[str] = []
    fp_lo = processor.state_fingerprint() if start == lo else None
    warm = 0
    if part:
        os.makedirs(os.path.dirname(os.path.abspath(part)), exist_ok=True)
    fh = open(part, "w", encoding="utf-8", newline="") if part else None
    try:
        if hi > lo:
            src.start_at(start)
            for pair in src:
                i = pair.index
                if i >= hi:
                    break
                if i == lo and fp_lo is None:
                    fp_lo = processor.state_fingerprint()
                res = processor.process(pair)
                if i < lo:
                    warm += 1
                    continue
                if fh is not None:
                    fh.write(_render(res, no_timings) + "\n")
                hashes.append(processor.state_fingerprint())
    finally:
        if fh is not None:
            fh.close()
    return {"lo": lo, "hi": hi, "done": len(hashes), "fp_lo": fp_lo, "hashes": hashes,
            "end": processor.get_state(), "warm": warm, "seconds": time.perf_counter() - t0}


def _fix_boundaries(shares: list[dict], scratch, source: str, homography, no_timings: bool,
                    on_rerun) -> tuple[dict[int, str], int, int]:
    """Rank 0: the boundaries in order; re-run where the carried-over state differs. Returns the
    re-run frames' lines, their number, and how many shares are used (a source that ended early
    ends the merge there, as one process stops too)."""
    from .sources import open_source
    fixed: dict[int, str] = {}
    rerun = 0
    state = None   # the state one process has before the current share
    usable = len(shares)
    for k, sh in enumerate(shares):
        if sh["done"] < sh["hi"] - sh["lo"]:   # the source ended early here (one process stops too)
            usable = k + 1
        if sh["hi"] <= sh["lo"]:
            continue
        if state is not None:
            scratch.set_state(state)
            if scratch.state_fingerprint() != sh["fp_lo"]:
                with open_source(source, realtime=False, homography=homography) as src:
                    src.start_at(sh["lo"])
                    converged, i = False, sh["lo"]
                    for pair in src:
                        i = pair.index
                        if i >= sh["lo"] + sh["done"]:
                            break
                        fixed[i] = _render(scratch.process(pair), no_timings)
                        rerun += 1
                        if scratch.state_fingerprint() == sh["hashes"][i - sh["lo"]]:
                            converged = True
                            break
                if on_rerun is not None:
                    on_rerun(sh["lo"], i, converged)
                state = sh["end"] if converged else scratch.get_state()
            else:
                state = sh["end"]
        else:
            state = sh["end"]
        if k + 1 == usable and usable < len(shares):
            break
    return fixed, rerun, usable


def _merge(shares: list[dict], fixed: dict[int, str], outs: list[tuple[str, str]], info: dict,
           first: Optional[str]) -> int:
    """Rank 0: the shares' rows in frame order (re-run frames from ``fixed``) into the exports,
    written atomically; returns the number of frames written."""
    from .atomic import atomic_path
    from .export import _json_default, csv_header, jsonable
    rows = 0
    with contextlib.ExitStack() as stack:
        files = {}
        for kind, path in outs:
            tmp = stack.enter_context(atomic_path(path))
            fh = stack.enter_context(open(tmp, "w", encoding="utf-8", newline=""))
            if kind == "csv":
                csv.writer(fh, lineterminator="\n").writerow(csv_header())
            else:
                fh.write(json.dumps({"stream": jsonable(info)}, default=_json_default) + "\n")
            files[kind] = fh
        if files:
            for sh in shares:
                with open(f"{first}.rank{sh['rank']}.part", encoding="utf-8") as pf:
                    for j, raw in enumerate(pf):
                        i = sh["lo"] + j
                        csv_text, line = json.loads(fixed.get(i, raw))
                        if "csv" in files:
                            files["csv"].write(csv_text)
                        if "json" in files:
                            files["json"].write(line + "\n")
                        rows += 1
            for fh in files.values():
                fh.flush()
                os.fsync(fh.fileno())
    return rows
