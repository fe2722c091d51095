"""The Train tab, a room per module: :mod:`.form` (the options and the job file they become),
:mod:`.launcher` (the ``dmsl train`` process), :mod:`.monitor` (progress bars and the training
chart), :mod:`.previews` (validation images), :mod:`.cv` (the cross-validation table) and
:mod:`.panel` (:class:`TrainPanel`, which puts them together)."""
from .form import DatasetInfo, TrainOptions, dataset_info, default_config_name, job_config
from .launcher import cli_prefix, train_command
from .panel import TrainPanel

__all__ = ["DatasetInfo", "TrainOptions", "TrainPanel", "cli_prefix", "dataset_info", "default_config_name",
           "job_config", "train_command"]
