"""What every importer shares: the import report (counts and per-file problems), the destination's
checks and safe names (the natural sort key is :func:`dmsl_core.data.names.natural_key`). The pairing
engine (:mod:`.pairing`) and each preset module import from here."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from ..folder import MANIFEST, DatasetError

PathLike = Union[str, os.PathLike]


@dataclass
class ImportProblem:
    """One file that could not be used (or not fully): its path and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class ImportReport:
    """What an import did: counts, problems (per file, with the reason) and notes."""

    preset: str
    src: str
    dst: str
    n_records: int = 0       # manifest rows written
    n_pairs: int = 0         # rows with both a visible and a thermal image
    n_vis: int = 0           # visible images copied
    n_th: int = 0            # thermal images copied
    n_annotated: int = 0     # rows with at least one landmark file
    n_unpaired: int = 0      # images without a partner of the other spectrum
    n_skipped: int = 0       # pairs/images left out entirely
    n_ignored: int = 0       # files that did not match the naming pattern
    problems: list[ImportProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    manifest: Optional[str] = None

    def add(self, path: PathLike | str, reason: str) -> None:
        self.problems.append(ImportProblem(str(path), reason))

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self, max_problems: int = 50) -> str:
        lines = [f"import ({self.preset}): {self.src} -> {self.dst}",
                 f"  records: {self.n_records} ({self.n_pairs} visible+thermal pairs), "
                 f"visible images: {self.n_vis}, thermal images: {self.n_th}, annotated: {self.n_annotated}",
                 f"  unpaired images: {self.n_unpaired}, left out: {self.n_skipped}, "
                 f"not matching the pattern: {self.n_ignored}, problems: {len(self.problems)}"]
        if self.manifest:
            lines.append(f"  manifest: {self.manifest}")
        for n in self.notes:
            lines.append(f"  note: {n}")
        if self.problems:
            lines.append("problems:")
            for pr in self.problems[:max_problems]:
                lines.append(f"  {pr}")
            if len(self.problems) > max_problems:
                lines.append(f"  ... and {len(self.problems) - max_problems} more")
        return "\n".join(lines)


def _safe(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._")
    return s or "x"


def _reason(exc: Exception, path: PathLike) -> str:
    msg = str(exc)
    prefix = f"{path}: "
    return msg[len(prefix):] if msg.startswith(prefix) else msg


def _prepare_dst(src: Path, dst: Path, overwrite: bool) -> None:
    if not src.is_dir():
        raise DatasetError(f"{src}: source is not a folder")
    s, d = src.resolve(), dst.resolve()
    if s == d:
        raise DatasetError(f"{dst}: the destination must differ from the source (the source is never modified)")
    if d in s.parents:
        raise DatasetError(f"{dst}: the destination contains the source {src}; choose a separate folder")
    if (dst / MANIFEST).exists() and not overwrite:
        raise DatasetError(f"{dst}: already holds a {MANIFEST}; choose an empty folder or overwrite (--force)")
    if dst.exists() and not dst.is_dir():
        raise DatasetError(f"{dst}: exists and is not a folder")
