"""Entry point: ``python -m bench`` (use ``bench/run``, which installs the peer first)."""

from .suite import main

raise SystemExit(main())
