"""Which server replica runs the sweeper (expired leases, offline agents, health checks).

On PostgreSQL, several replicas may share one database: the leader is whoever holds a
session-level advisory lock on a dedicated connection. The lock goes when that connection
dies, and another replica takes over at its next sweep. SQLite serves one process per file,
so that process always leads.
"""

from __future__ import annotations

import contextlib
import logging

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

log = logging.getLogger("deploybench.server")

# Any constant shared by every replica of this schema ("dblead" in ASCII).
LOCK_KEY = 0x64626C656164


class Leadership:
    """``is_leader()`` before each sweep; ``release()`` at shutdown."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._held: Connection | None = None

    def is_leader(self) -> bool:
        """Whether this replica leads now (acquiring the lock if it is free)."""
        if self.engine.dialect.name != "postgresql":
            return True
        if self._held is not None:
            try:
                self._held.execute(text("SELECT 1"))
                self._held.commit()
                return True
            except DBAPIError:
                log.warning("lost the sweeper lock's connection; trying to lead again")
                self.release()
        connection = self.engine.connect()
        try:
            got = connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY}
            ).scalar()
            connection.commit()  # a session-level lock outlives the transaction
        except DBAPIError:
            connection.close()
            raise
        if got:
            self._held = connection
            log.info("this replica now runs the sweeper")
            return True
        connection.close()
        return False

    def release(self) -> None:
        """Give the lock back (closing its connection releases it in any case)."""
        held, self._held = self._held, None
        if held is None:
            return
        with contextlib.suppress(DBAPIError):
            held.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
            held.commit()
        with contextlib.suppress(DBAPIError):
            held.close()
