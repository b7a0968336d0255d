"""Shared pytest set-up.

``torchvision_defs.py`` is a helper that the torch-marked tests import (it imports torch
at its top); it holds no tests or doctests, so it is never collected on its own (with
``--doctest-modules`` pytest would otherwise import it, and fail where torch is absent).
"""

collect_ignore = ["torchvision_defs.py"]
