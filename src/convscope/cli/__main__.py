"""``python -m convscope.cli ...``: the same as the ``convscope`` command."""

import sys

from . import main

sys.exit(main())
