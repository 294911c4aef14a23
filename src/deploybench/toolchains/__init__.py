"""Deployment toolchains: the contract in base.py, one subpackage per toolchain."""
