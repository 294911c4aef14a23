"""Shipped test doubles and contract suites for plugin authors.

- :mod:`deploybench.testing.fakes`: a fault-injecting toolchain on the ONNX reference
  evaluator, to exercise crashes, hangs and errors through the real worker processes.
- :mod:`deploybench.testing.toolchain_contract`: the suite every toolchain must pass.
"""
