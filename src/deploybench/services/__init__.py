"""The one core API that the CLI, and later the server and agents, call."""
