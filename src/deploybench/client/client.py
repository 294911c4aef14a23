"""The Python client of a deploybench lab server: everything the CLI can do, as methods."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, overload

from deploybench.client.agent_api import AgentApi
from deploybench.client.farm import FarmApi
from deploybench.client.inputs import Experiments, collect_experiments, server_definition
from deploybench.client.sse import parse_sse
from deploybench.client.waiting import FINAL_STATES, wait_for_jobs

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Submission:
    """What a submission created: one campaign and its jobs, in submission order."""

    campaign: str
    jobs: list[str]


class Client(AgentApi, FarmApi):
    """Talk to a lab server: ``Client("http://lab:8000", token)``.

    Every method raises deploybench errors carrying the server's message: ``AuthError`` (401),
    ``ForbiddenError`` (403), ``NotFoundError`` (404), ``FenceError`` (409), ``SpecError``
    (422), ``UserError`` (400, 413), ``ServerUnreachableError`` when the server cannot be reached.
    Farm operations (queue, scheduler, broadcasts, targets, reservations, usage, priorities)
    come from :class:`~deploybench.client.farm.FarmApi`.
    """

    # -- account ------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``{"status": "ok", "version"}``; needs no valid token."""
        answer: dict[str, Any] = self._json("GET", "/health")
        return answer

    def me(self) -> dict[str, Any]:
        """``{"name", "role"}`` of the token's owner."""
        answer: dict[str, Any] = self._json("GET", "/me")
        return answer

    def add_user(self, name: str, role: str, password: str | None = None) -> dict[str, Any]:
        """Create a user (admins only); the answer holds its first token, shown only now."""
        body: dict[str, Any] = {"name": name, "role": str(role)}
        if password is not None:
            body["password"] = password
        answer: dict[str, Any] = self._json("POST", "/users", json=body)
        return answer

    def new_token(self, label: str | None = None, ttl_days: float | None = None) -> dict[str, Any]:
        """Issue another token for the caller: ``{"id", "token"}``."""
        body = {k: v for k, v in {"label": label, "ttl_days": ttl_days}.items() if v is not None}
        answer: dict[str, Any] = self._json("POST", "/tokens", json=body)
        return answer

    def revoke_token(self, token_id: int | str) -> None:
        """Revoke a token (its owner or an admin)."""
        self._request("DELETE", f"/tokens/{token_id}")

    def targets(self) -> list[dict[str, Any]]:
        """Every target of the farm with its agent, health and description."""
        return list(self._json("GET", "/targets"))

    # -- jobs ---------------------------------------------------------------------------------

    def submit(self, experiments: Experiments, name: str | None = None) -> Submission:
        """Validate experiments (YAML paths, mappings or ``Experiment`` objects), upload their
        local model and dataset files, and queue them as one campaign."""
        found = collect_experiments(experiments)
        definitions = [server_definition(e, self.upload_artifact) for e in found]
        body: dict[str, Any] = {"experiments": definitions}
        if name is not None:
            body["name"] = name
        answer = self._json("POST", "/experiments", json=body)
        return Submission(campaign=answer["campaign"], jobs=list(answer["jobs"]))

    def submit_sweep(
        self, base: dict[str, Any], grid: dict[str, list[Any]], name: str | None = None
    ) -> Submission:
        """Queue a sweep the server expands: ``base`` with every combination of ``grid``
        (dotted paths to values, e.g. ``{"environment.threads": [1, 2]}``)."""
        body: dict[str, Any] = {"sweep": {"base": base, "grid": grid}}
        if name is not None:
            body["name"] = name
        answer = self._json("POST", "/experiments", json=body)
        return Submission(campaign=answer["campaign"], jobs=list(answer["jobs"]))

    def jobs(self, campaign: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
        """Jobs the caller may see, oldest first."""
        return list(self._json("GET", "/jobs", params={"campaign": campaign, "state": state}))

    def job(self, job_id: str) -> dict[str, Any]:
        """One job."""
        answer: dict[str, Any] = self._json("GET", f"/jobs/{job_id}")
        return answer

    def logs(self, job_id: str) -> list[dict[str, Any]]:
        """The job's timestamped actions and agent log lines."""
        return list(self._json("GET", f"/jobs/{job_id}/logs"))

    def _control(self, action: str, ident: str) -> int:
        return int(self._json("POST", f"/jobs/{ident}/{action}")["affected"])

    def abort(self, ident: str) -> int:
        """Abort a job or a whole campaign; returns how many jobs were affected."""
        return self._control("abort", ident)

    def suspend(self, ident: str) -> int:
        """Hold a job or campaign (a running measurement is aborted and re-queued as held)."""
        return self._control("suspend", ident)

    def resume(self, ident: str) -> int:
        """Put held jobs back in the queue."""
        return self._control("resume", ident)

    def _expand(self, idents: Sequence[str]) -> list[dict[str, Any]]:
        """Jobs named by job or campaign ids, each once, in the order given."""
        seen: dict[str, dict[str, Any]] = {}
        for ident in idents:
            found = self.jobs(campaign=ident)
            for job in found or [self.job(ident)]:  # not a campaign: a job id (or 404)
                seen[job["id"]] = job
        return list(seen.values())

    def wait(
        self,
        ids: str | Sequence[str],
        *,
        progress: bool = True,
        poll: float = 0.5,
        timeout: float | None = None,
    ) -> list[dict[str, Any]]:
        """Block until every job (job or campaign ids) is succeeded, failed or aborted.

        Raises ``TimeoutError`` naming the unfinished jobs when ``timeout`` seconds pass.
        """
        idents = [ids] if isinstance(ids, str) else list(ids)
        return wait_for_jobs(
            lambda: self._expand(idents), progress=progress, poll=poll, timeout=timeout
        )

    # -- events -------------------------------------------------------------------------------

    @overload
    def events(
        self, after: int = 0, job: str | None = None, *, once: Literal[False] = False
    ) -> Iterator[dict[str, Any]]: ...

    @overload
    def events(
        self, after: int = 0, job: str | None = None, *, once: Literal[True]
    ) -> list[dict[str, Any]]: ...

    def events(
        self, after: int = 0, job: str | None = None, *, once: bool = False
    ) -> Iterator[dict[str, Any]] | list[dict[str, Any]]:
        """Events after id ``after`` (optionally of one job), oldest first.

        By default a generator following the live stream until the server closes it; resume
        with ``after=<last event's id>``. ``once=True`` returns what exists now, as a list.
        """
        if once:
            params = {"after": after, "job": job, "once": "true"}
            return list(self._json("GET", "/events", params=params))
        return self._follow(after, job)

    def _follow(self, after: int, job: str | None) -> Iterator[dict[str, Any]]:
        # No read timeout: a quiet farm may send nothing for a long time.
        with self._stream("/events", params={"after": after, "job": job}, read_timeout=None) as r:
            yield from parse_sse(r.iter_lines())

    # -- runs ---------------------------------------------------------------------------------

    def runs(self, **filters: Any) -> list[dict[str, Any]]:
        """Run records, filtered by experiment, toolchain, target, status, where, limit."""
        params = {key: value for key, value in filters.items() if value not in (None, [])}
        return list(self._json("GET", "/runs", params=params))

    def run(self, run_id: str) -> dict[str, Any]:
        """One run record."""
        answer: dict[str, Any] = self._json("GET", f"/runs/{run_id}")
        return answer

    def _run_ids(self, ident: str) -> list[str]:
        """Run ids behind a campaign, a job or a run id (tried in that order)."""
        from deploybench.services.lab import NotFoundError

        jobs = self.jobs(campaign=ident)
        if not jobs:
            try:
                jobs = [self.job(ident)]
            except NotFoundError:
                return [ident]  # a run id; fetching it reports a 404 if it is not one either
        return [j["run_id"] for j in jobs if j.get("state") in FINAL_STATES and j.get("run_id")]

    def results_frame(self, ids_or_campaign: str | Sequence[str]) -> pd.DataFrame:
        """One flat row per finished run (see :func:`deploybench.store.flatten.flat_row`).

        Takes a campaign id, job ids or run ids. Needs pandas (``pip install
        deploybench[export]``).
        """
        from deploybench.errors import UserError
        from deploybench.store.flatten import FIXED_COLUMNS, flat_row

        try:
            import pandas as pd
        except ImportError:
            raise UserError(
                "results_frame needs pandas; install it with `pip install deploybench[export]`"
            ) from None
        idents = [ids_or_campaign] if isinstance(ids_or_campaign, str) else ids_or_campaign
        run_ids = list(dict.fromkeys(r for ident in idents for r in self._run_ids(ident)))
        rows = [flat_row(self.run(run_id)) for run_id in run_ids]
        return pd.DataFrame(rows, columns=None if rows else list(FIXED_COLUMNS))
