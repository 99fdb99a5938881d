"""``python -m cocotune`` is the ``cocotune`` command."""

from cocotune.cli import main

raise SystemExit(main())
