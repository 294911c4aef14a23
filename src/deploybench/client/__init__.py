"""Python client of the deploybench lab server (``deploybench.Client``)."""

from deploybench.client.client import Client, Submission
from deploybench.client.errors import ServerError, ServerUnreachableError
from deploybench.client.transfer import ChecksumError

__all__ = ["ChecksumError", "Client", "ServerError", "ServerUnreachableError", "Submission"]
