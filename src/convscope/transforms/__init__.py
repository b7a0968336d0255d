"""Image transforms and augmentation, as ``torchvision.transforms``.

``import torchvision.transforms as transforms`` becomes
``import convscope.transforms as transforms``; the classes take the same arguments and do
the same thing to a PIL image (through Pillow, as torchvision) or to a NumPy array /
:class:`convscope.Tensor` of shape (..., C, H, W) (torchvision's tensor formulas).
Random transforms also take ``generator=``; without it they draw from the default
generator that :func:`convscope.manual_seed` seeds.

>>> import numpy as np, convscope as cs
>>> import convscope.transforms as T
>>> _ = cs.manual_seed(0)
>>> from PIL import Image
>>> train = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(),
...                    T.ToTensor(), T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
>>> x = train(Image.new("RGB", (32, 32)))             # a PIL image, as torchvision
>>> type(x).__name__, x.shape
('Tensor', (3, 32, 32))
>>> T.RandomHorizontalFlip(p=1.0)(np.arange(3.0).reshape(1, 1, 3))  # or (C, H, W) arrays
array([[[2., 1., 0.]]])
"""

from . import functional as functional
from .functional import InterpolationMode as InterpolationMode
from .transforms import CenterCrop as CenterCrop
from .transforms import ColorJitter as ColorJitter
from .transforms import Compose as Compose
from .transforms import Lambda as Lambda
from .transforms import Normalize as Normalize
from .transforms import Pad as Pad
from .transforms import RandomCrop as RandomCrop
from .transforms import RandomHorizontalFlip as RandomHorizontalFlip
from .transforms import RandomResizedCrop as RandomResizedCrop
from .transforms import RandomVerticalFlip as RandomVerticalFlip
from .transforms import Resize as Resize
from .transforms import ToTensor as ToTensor

__all__ = [
    "CenterCrop", "ColorJitter", "Compose", "InterpolationMode", "Lambda", "Normalize", "Pad",
    "RandomCrop", "RandomHorizontalFlip", "RandomResizedCrop", "RandomVerticalFlip", "Resize",
    "ToTensor", "functional",
]
