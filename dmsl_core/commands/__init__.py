"""Sub-commands of the ``dmsl`` CLI. Each module defines ``register(subparsers)``.

The list in :data:`COMMAND_MODULES` fixes the order in ``dmsl --help``.
"""
COMMAND_MODULES = [
    "dmsl_core.commands.core",     # models, train, eval, predict, bench
    "dmsl_core.commands.data",     # synth, import, split, annotate
    "dmsl_core.commands.streams",  # run, calibrate, sources
    "dmsl_core.commands.quality",  # quality
]
