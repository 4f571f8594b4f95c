"""The paper experiments: the analogues of its tables and figures on simulated data, written into docs/."""
