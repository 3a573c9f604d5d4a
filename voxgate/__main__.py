"""``python -m voxgate`` is the ``voxgate`` command."""

from voxgate.cli import main

raise SystemExit(main())
