"""The lab agent: runs the server's jobs on this host's targets, over HTTP only."""

from deploybench.agent.agent import Agent
from deploybench.agent.config import AgentConfig, load_agent_config, run_agent
from deploybench.agent.journal import Journal, JournalEntry, RecoveryAction, recovery_action
from deploybench.agent.retry import Backoff

__all__ = [
    "Agent",
    "AgentConfig",
    "Backoff",
    "Journal",
    "JournalEntry",
    "RecoveryAction",
    "load_agent_config",
    "recovery_action",
    "run_agent",
]
