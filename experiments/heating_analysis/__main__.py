"""`python -m experiments.heating_analysis`."""

from experiments.heating_analysis.analysis import main

raise SystemExit(main())
