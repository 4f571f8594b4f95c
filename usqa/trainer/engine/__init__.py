"""The method-neutral training engine: one base `Engine`, one callback vocabulary, one device resolver.

- `base`: `Engine` and `Callback` (`on_start`, `on_iteration_end`, `on_end`);
- `device`: `resolve_device` (an absent CUDA device is an error, never a silent CPU);
- `callbacks`: progress bar, JSONL metrics, atomic checkpoints, job progress, history, best model.

The methods' engines live in their rooms: `usqa.trainer.amenability.engine` (Algorithm 1 of seed 004, an
iteration is an episode) and `usqa.trainer.heating` (`steps`, `engine`, `supervised`: an iteration is an
optimiser step). This package re-exports nothing, so importing one engine never imports the others.
"""
