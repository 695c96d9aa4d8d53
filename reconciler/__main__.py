"""`python -m reconciler` is the `fastflow` command."""

from reconciler.cli import main

raise SystemExit(main())
