"""Stores: content-addressed artifacts (:mod:`deploybench.store.artifacts`) and results."""
