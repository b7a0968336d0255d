"""Numeric kernels on raw NumPy arrays: convolution, pooling, ReLU and padding.

Two implementations with identical signatures: :mod:`.reference` (plain loops, the
executable spec) and :mod:`.fast` (NumPy views and BLAS). The names exported here are the
fast ones. Kernels never validate user input; :mod:`convscope.shapes` does that first.
"""

from . import fast, reference
from .fast import (
    avg_pool2d as avg_pool2d,
)
from .fast import (
    avg_pool2d_grad as avg_pool2d_grad,
)
from .fast import (
    conv2d as conv2d,
)
from .fast import (
    conv2d_grad_input as conv2d_grad_input,
)
from .fast import (
    conv2d_grad_weight as conv2d_grad_weight,
)
from .fast import (
    conv2d_grads as conv2d_grads,
)
from .fast import (
    conv2d_relu as conv2d_relu,
)
from .fast import (
    conv2d_relu_grads as conv2d_relu_grads,
)
from .fast import (
    conv2d_relu_maxpool as conv2d_relu_maxpool,
)
from .fast import (
    max_pool2d as max_pool2d,
)
from .fast import (
    max_pool2d_grad as max_pool2d_grad,
)
from .fast import (
    pad2d as pad2d,
)
from .fast import (
    pad2d_grad as pad2d_grad,
)
from .fast import (
    relu as relu,
)
from .fast import (
    relu_grad as relu_grad,
)

__all__ = [
    "fast",
    "reference",
    "conv2d",
    "conv2d_grad_input",
    "conv2d_grad_weight",
    "conv2d_relu",
    "conv2d_relu_grads",
    "conv2d_grads",
    "conv2d_relu_maxpool",
    "max_pool2d",
    "max_pool2d_grad",
    "avg_pool2d",
    "avg_pool2d_grad",
    "relu",
    "relu_grad",
    "pad2d",
    "pad2d_grad",
]
