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
