"""``python -m normagent`` runs the command line."""

from normagent.cli import main

raise SystemExit(main())
