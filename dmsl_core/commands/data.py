"""Data sub-commands: ``synth`` (synthetic generator), ``import`` (dataset importers), ``split`` (10-fold protocol).

Each owner adds a ``_register_*`` helper and calls it from :func:`register`.
"""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the data commands to the ``dmsl`` parser."""
    _register_import(subparsers)
    _register_split(subparsers)


def _register_import(sub: argparse._SubParsersAction) -> None:
    from ..data.importers import add_import_arguments, run_import_command

    p = sub.add_parser("import", help="import a paired visible/thermal face dataset into a DMSL dataset folder",
                       description="Convert a folder of face images (+ annotations) into a DMSL dataset folder "
                                   "(manifest.csv, images, .pts). The source is never modified.")
    add_import_arguments(p)
    p.set_defaults(func=run_import_command)


def _register_split(sub: argparse._SubParsersAction) -> None:
    from ..data.splits import add_split_arguments, run_split_command

    p = sub.add_parser("split", help="write the paper's subject-wise k-fold split (splits.json)",
                       description="Sort subjects by ID, cut them into N groups; fold k tests on group k, "
                                   "validates on groups k+1 and k+2, trains on the rest.")
    add_split_arguments(p)
    p.set_defaults(func=run_split_command)
