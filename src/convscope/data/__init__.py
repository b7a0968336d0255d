"""Data: image files in and out, folders of labelled images, built-in datasets, batches.

Images are float32 volumes of shape (C, H, W) in [0, 1]; a batch is (N, C, H, W) with
int64 labels (N,). Files are H×W×D pictures; the conversion happens here and nowhere else.

>>> from convscope.data import shapes, batches
>>> train, val, test = shapes(n=100, size=32).split((0.8, 0.1, 0.1), seed=0)
>>> len(train), len(val), len(test)
(80, 10, 10)
>>> x, y = next(batches(train, 16))
>>> x.shape, y.dtype
((16, 3, 32, 32), dtype('int64'))
"""

from .datasets import Dataset as Dataset
from .datasets import ImageFolder as ImageFolder
from .datasets import digits as digits
from .datasets import load_dataset as load_dataset
from .images import DEFAULT_MAX_PIXELS as DEFAULT_MAX_PIXELS
from .images import IMAGE_EXTENSIONS as IMAGE_EXTENSIONS
from .images import image_size as image_size
from .images import load_image as load_image
from .images import load_pil_image as load_pil_image
from .images import save_image as save_image
from .loader import batches as batches
from .synthetic import SHAPE_CLASSES as SHAPE_CLASSES
from .synthetic import shapes as shapes

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "SHAPE_CLASSES",
    "Dataset",
    "ImageFolder",
    "batches",
    "digits",
    "image_size",
    "load_dataset",
    "load_image",
    "load_pil_image",
    "save_image",
    "shapes",
]
