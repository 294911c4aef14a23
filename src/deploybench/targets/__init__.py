"""Execution targets: the contract in base.py, one module per target."""
