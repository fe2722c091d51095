"""Models: the paper's U-Net, M_b (BoundaryModel) and M_l (LandmarkModel), named configurations."""
from .unet import UNet
from .heads import DMSLModel, BoundaryModel, LandmarkModel
from .registry import ModelConfig, register_config, get_config, list_configs, create_models

__all__ = ["UNet", "DMSLModel", "BoundaryModel", "LandmarkModel", "ModelConfig", "register_config",
           "get_config", "list_configs", "create_models"]
