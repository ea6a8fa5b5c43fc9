"""Every command's --help renders (typer formats docstrings and option help as rich markup: a stray [tag] in them
breaks the help page, not the command)."""

import pytest
from typer.testing import CliRunner

from cli import app

COMMANDS = [c.name or c.callback.__name__ for c in app.registered_commands]  # type: ignore[union-attr]


@pytest.mark.parametrize("command", [[], *[[name] for name in COMMANDS]], ids=lambda c: c[0] if c else "cli")
def test_help_renders(command):
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
