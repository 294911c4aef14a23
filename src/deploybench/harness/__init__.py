"""The measurement harness: the worker that times a session in a fresh process, the launcher
that starts it (process group, timeout, affinity, memory limit, rusage), and the capture of
the execution environment. Host targets use it; firmware targets do not."""
