"""Generators of docs/: figures and generated blocks of the markdown pages, all written through `docs_gen.blocks`."""
