"""The training engine family: one base `Engine`, one callback vocabulary, one device resolver.

- `base`: `Engine` and `Callback` (`on_start`, `on_iteration_end`, `on_end`);
- `device`: `resolve_device` (an absent CUDA device is an error, never a silent CPU);
- `callbacks`: progress bar, JSONL metrics, atomic checkpoints, job progress, history, best model;
- `amenability`: Algorithm 1 of the RL trainer (an iteration is an episode) and its non-selective baseline;
- `steps`, `heating`, `supervised`: step-based engines (an iteration is an optimiser step) of heating and
  supervised fine-tuning.

Modules are imported from where they are defined; this package re-exports nothing, so importing one engine
never imports the others.
"""
