"""The training recipe: the named budget presets and the config files a run writes and reads."""
