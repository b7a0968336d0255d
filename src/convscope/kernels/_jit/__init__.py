"""Everything compiled by Numba lives in this package, and only here.

It is imported on the first call of a fast kernel (never by ``import convscope``), and
every function is compiled with ``cache=True``, so a new process loads machine code from
``__pycache__`` instead of compiling it again. :mod:`.simd` gives the loops explicit
512-bit vectors; the loops themselves are :mod:`.conv` (forward and packing),
:mod:`.wgrad` (weight gradients), :mod:`.depthwise` and :mod:`.pool`, with row helpers in
:mod:`.rows`. Callers pass
arrays already laid out as each loop expects (see :mod:`convscope.kernels.direct`).

With ``NUMBA_DISABLE_JIT=1`` every loop runs as plain Python on NumPy arrays (slowly),
which is how the tests cover the loop bodies line by line.
"""
