"""``python -m ncrt`` is the ``ncrt`` command."""

from .cli import main

raise SystemExit(main())
