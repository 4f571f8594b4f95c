"""usqa learning: networks, the amenability pair (seed 004), the heated backbone (seed 000), export, jobs."""
