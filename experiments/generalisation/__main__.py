"""`python -m experiments.generalisation`."""

from experiments.generalisation.benchmark import main

raise SystemExit(main())
