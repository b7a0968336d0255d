"""Pictures: colour maps, labelled grids of feature maps, PNG files.

Small, general helpers that the CLI (``convscope apply``, ``convscope demo``) and notebooks
share; every function returns or takes plain uint8 RGB arrays of shape (H, W, 3).

>>> import numpy as np, convscope.viz as viz
>>> rgb = viz.grid(np.zeros((2, 4, 4)), ["a", "b"])
>>> rgb.shape[2], rgb.dtype
(3, dtype('uint8'))
"""

from .colors import DIVERGING as DIVERGING
from .colors import diverging as diverging
from .colors import grey as grey
from .colors import map_limits as map_limits
from .colors import symmetric_limit as symmetric_limit
from .grid import font as font
from .grid import grid as grid
from .image import save_png as save_png
from .image import to_rgb as to_rgb
from .image import upscale as upscale

__all__ = ["DIVERGING", "diverging", "grey", "map_limits", "symmetric_limit", "grid", "font",
           "save_png", "to_rgb", "upscale"]

# Issue 6: feature maps, kernels, the sliding-kernel animation, why, receptive field,
# saliency, training curves, the HTML report.
from .animate import Frame as Frame
from .animate import animate as animate
from .animate import save_gif as save_gif
from .curves import training_curves as training_curves
from .pictures import feature_map_grid as feature_map_grid
from .pictures import feature_maps as feature_maps
from .pictures import kernel_grid as kernel_grid
from .pictures import kernel_picture as kernel_picture
from .receptive import ReceptiveField as ReceptiveField
from .receptive import receptive_field as receptive_field
from .report import report as report
from .saliency import Saliency as Saliency
from .saliency import grad_cam as grad_cam
from .saliency import saliency as saliency
from .saliency import saliency_maps as saliency_maps
from .why import Why as Why
from .why import why as why

__all__ += ["Frame", "animate", "save_gif", "training_curves", "feature_map_grid",
            "feature_maps", "kernel_grid", "kernel_picture", "ReceptiveField",
            "receptive_field", "report", "Saliency", "grad_cam", "saliency", "saliency_maps",
            "Why", "why"]
