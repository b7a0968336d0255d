"""PyTorch's ``torch.utils`` names that convscope has: :mod:`convscope.utils.data`.

>>> from convscope.utils.data import DataLoader, TensorDataset
"""

from . import data as data

__all__ = ["data"]
