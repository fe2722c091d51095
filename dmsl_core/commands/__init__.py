"""Sub-commands of the ``dmsl`` CLI. Each module defines ``register(subparsers)``; they parse
arguments and print, the workflows live in the library below them.

The list in :data:`COMMAND_MODULES` fixes the order in ``dmsl --help``. Shared argument helpers are
in :mod:`.common`, the training progress output in :mod:`.progress`.
"""
COMMAND_MODULES = [
    "dmsl_core.commands.models",       # models
    "dmsl_core.commands.train",        # train, cv
    "dmsl_core.commands.evaluate",     # eval
    "dmsl_core.commands.export_onnx",  # export-onnx
    "dmsl_core.commands.predict",      # predict
    "dmsl_core.commands.bench",        # bench
    "dmsl_core.commands.data",         # synth, import, split, annotate
    "dmsl_core.commands.streams",      # run, calibrate, sources
    "dmsl_core.commands.quality",      # quality
]
