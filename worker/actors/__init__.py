"""Actors: thin wrappers; each calls an async handle_* that tests await directly."""
