"""The command line: a thin adapter over the runner and registry."""
