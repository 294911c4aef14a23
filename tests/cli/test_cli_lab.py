"""Bad input to the lab commands exits 2 with a message naming the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from deploybench.cli.app import app


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DEPLOYBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DEPLOYBENCH_SERVER", raising=False)
    monkeypatch.delenv("DEPLOYBENCH_TOKEN", raising=False)
    return tmp_path / "home"


def test_serve_refuses_an_invalid_config(tmp_path: Path) -> None:
    config = tmp_path / "server.yaml"
    config.write_text("notices: {smtp_host: 127.0.0.1, smtp_portt: 25}\n")
    result = CliRunner().invoke(app, ["serve", "--config", str(config)])
    assert result.exit_code == 2
    assert "notices.smtp_portt: unknown key" in result.stderr and "smtp_port" in result.stderr
    config.write_text("- not a mapping\n")
    result = CliRunner().invoke(app, ["serve", "--config", str(config)])
    assert result.exit_code == 2 and "must be a mapping" in result.stderr


def test_user_add_refuses_unknown_roles_and_duplicates() -> None:
    result = CliRunner().invoke(app, ["user", "add", "ann", "--role", "wizard"])
    assert result.exit_code == 2 and "unknown role 'wizard'" in result.stderr
    first = CliRunner().invoke(app, ["user", "add", "ann"])
    assert first.exit_code == 0 and first.stdout.strip().startswith("dbt_")
    again = CliRunner().invoke(app, ["user", "add", "ann"])
    assert again.exit_code == 2 and "already exists" in again.stderr


def test_remote_commands_without_a_server_say_how_to_get_one() -> None:
    for args in (["status"], ["logs", "job-x"], ["runs", "list", "--server", "http://127.0.0.1:9"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
    assert "deploybench up" in CliRunner().invoke(app, ["status"]).stderr
