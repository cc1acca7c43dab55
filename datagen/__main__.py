"""Entry point of ``python -m datagen``."""

from __future__ import annotations

import sys

from datagen.cli import main

sys.exit(main())
