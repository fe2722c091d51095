"""Models: the paper's U-Net, M_b (BoundaryModel) and M_l (LandmarkModel), named configurations."""
from .unet import UNet
from .heads import DMSLModel, BoundaryModel, HeatmapLandmarkModel, LandmarkModel
from .registry import ModelConfig, register_config, get_config, list_configs, create_models, build_models

__all__ = ["UNet", "DMSLModel", "BoundaryModel", "LandmarkModel", "HeatmapLandmarkModel", "build_models", "ModelConfig", "register_config",
           "get_config", "list_configs", "create_models"]
