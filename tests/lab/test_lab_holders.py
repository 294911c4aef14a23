"""Only the agent holding a lease may act on it; definitions naming unknown toolchains or
probes, or options the toolchain refuses, are refused at submit with their field path."""

from __future__ import annotations

from typing import Any

API = "/api/v1"


def test_another_agent_cannot_heartbeat_or_finish_a_lease(lab: Any) -> None:
    user = lab.add_user("user")
    holder, intruder = lab.add_agent(), lab.add_agent()
    _, (job_id,) = lab.submit(user)
    lease = lab.lease(holder)
    assert lease is not None and lease["job_id"] == job_id
    epoch = lease["epoch"]
    assert lab.heartbeat(intruder, job_id, epoch).status_code == 403
    answer = lab.client.post(
        f"{API}/jobs/{job_id}/finish", json={"epoch": epoch}, headers=intruder.headers
    )
    assert answer.status_code == 403 and "another agent" in answer.text
    answer = lab.client.post(
        f"{API}/jobs/{job_id}/log", json={"epoch": epoch, "lines": ["x"]}, headers=intruder.headers
    )
    assert answer.status_code == 403
    assert lab.heartbeat(holder, job_id, epoch).status_code == 200
    assert lab.job(job_id)["state"] in ("assigned", "running")


def test_unknown_plugins_and_bad_toolchain_options_are_422(lab: Any) -> None:
    user = lab.add_user("user")
    cases = [
        (lab.definition(toolchain={"name": "tensorflow-magic"}), "toolchain.name"),
        (lab.definition(measurement={"probes": ["no-probe"]}), "measurement.probes"),
        (
            lab.definition(toolchain={"name": "onnxruntime", "config": {"quantization": "int3"}}),
            "toolchain.config.quantization",
        ),
    ]
    before = len(lab.client.get(f"{API}/jobs", headers=user.headers).json())
    for definition, path in cases:
        answer = lab.client.post(
            f"{API}/experiments", json={"experiments": [definition]}, headers=user.headers
        )
        assert answer.status_code == 422, answer.text
        assert any(path in line for line in answer.json()["detail"]), answer.json()
    assert len(lab.client.get(f"{API}/jobs", headers=user.headers).json()) == before
