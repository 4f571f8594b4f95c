"""`python -m experiments.results`."""

from experiments.results.benchmark import main

raise SystemExit(main())
