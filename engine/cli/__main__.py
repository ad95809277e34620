"""`python -m engine.cli`: the same entry point as the `vsgg` command."""
from engine.cli.main import main

raise SystemExit(main())
