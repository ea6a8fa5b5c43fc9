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


@pytest.mark.parametrize("command", [[], *[[name] for name in COMMANDS]], ids=lambda c: c[0] if c else "cli")
def test_dash_h_is_help(command):
    assert CliRunner().invoke(app, [*command, "-h"]).output == CliRunner().invoke(app, [*command, "--help"]).output


def test_version_and_completion():
    from importlib.metadata import version

    for flag in ("--version", "-V"):
        result = CliRunner().invoke(app, [flag])
        assert result.exit_code == 0 and result.output == f"proreg-clip {version('proreg-clip')}\n"
    assert "--install-completion" in CliRunner().invoke(app, ["--help"]).output


def test_the_installed_console_command_is_the_same_app():
    import shutil
    import subprocess

    command = shutil.which("proreg-clip")
    assert command, "pip install -e . installs the proreg-clip command (pyproject's [project.scripts])"
    result = subprocess.run([command, "datasets", "-h"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Usage: proreg-clip datasets" in result.stdout
