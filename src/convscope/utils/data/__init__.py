"""``torch.utils.data`` for convscope: datasets, samplers, DataLoader, ImageFolder.

The names, arguments and semantics are PyTorch's (and torchvision's for
:class:`ImageFolder`), so ``from torch.utils.data import DataLoader`` becomes
``from convscope.utils.data import DataLoader``. Differences: ``num_workers`` is 0 only
(batches load in the main process), and integer labels come out of the default collate as
NumPy int64 arrays, not tensors (convscope's Tensor holds floats).

>>> import numpy as np, convscope as cs
>>> from convscope.utils.data import DataLoader, TensorDataset, random_split
>>> ds = TensorDataset(np.random.default_rng(0).random((100, 1, 8, 8), np.float32),
...                    np.arange(100) % 10)
>>> train, val = random_split(ds, [0.8, 0.2], generator=cs.Generator().manual_seed(0))
>>> images, labels = next(iter(DataLoader(train, batch_size=32, shuffle=True)))
>>> images.shape, labels.dtype
((32, 1, 8, 8), dtype('int64'))
"""

from .collate import default_collate as default_collate
from .collate import default_convert as default_convert
from .dataloader import DataLoader as DataLoader
from .dataset import ConcatDataset as ConcatDataset
from .dataset import Dataset as Dataset
from .dataset import Subset as Subset
from .dataset import TensorDataset as TensorDataset
from .dataset import random_split as random_split
from .folder import ImageFolder as ImageFolder
from .sampler import BatchSampler as BatchSampler
from .sampler import RandomSampler as RandomSampler
from .sampler import Sampler as Sampler
from .sampler import SequentialSampler as SequentialSampler
from .sampler import SubsetRandomSampler as SubsetRandomSampler

__all__ = [
    "BatchSampler",
    "ConcatDataset",
    "DataLoader",
    "Dataset",
    "ImageFolder",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "Subset",
    "SubsetRandomSampler",
    "TensorDataset",
    "default_collate",
    "default_convert",
    "random_split",
]
