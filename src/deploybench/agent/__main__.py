"""``python -m deploybench.agent --server URL --token TOKEN [--name N] [--config agent.yaml]``.

The same as ``deploybench agent``; the token may also come from ``DEPLOYBENCH_TOKEN`` so it
does not show in the process list.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from deploybench.errors import UserError


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the agent; exit code 2 for a user error."""
    parser = argparse.ArgumentParser(prog="python -m deploybench.agent")
    parser.add_argument("--server", required=True, help="lab server URL")
    parser.add_argument("--token", default=os.environ.get("DEPLOYBENCH_TOKEN"))
    parser.add_argument("--name", default=None, help="agent name (default: host name)")
    parser.add_argument("--config", type=Path, default=None, help="agent.yaml")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("give --token or set DEPLOYBENCH_TOKEN")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from deploybench.agent.config import run_agent

    try:
        run_agent(args.server, args.token, args.name, args.config)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
