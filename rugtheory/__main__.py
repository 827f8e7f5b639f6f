"""``python -m rugtheory`` is the ``rugtheory`` command."""

from rugtheory.app.cli import main

raise SystemExit(main())
