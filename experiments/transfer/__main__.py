"""`python -m experiments.transfer`."""

from experiments.transfer.study import main

raise SystemExit(main())
