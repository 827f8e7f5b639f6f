"""``python -m rugtheory`` is the ``rugtheory`` command."""

from rugtheory.cli import main

raise SystemExit(main())
