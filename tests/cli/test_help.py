"""Every command's --help renders, and reads as users expect (cli_options.Group, Command, HelpFormatter): a metavar
that says what an option takes, its choices listed, nothing a user copies cut or broken at 80 columns (or in a pipe),
the command list whole."""

import re

import pytest
import typer.main
from typer.testing import CliRunner

from cli import app
from trackers import TRACKERS
from train.methods import METHODS

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


def help_at(command: list[str], columns: int) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": str(columns)}, terminal_width=columns)
    assert result.exit_code == 0, result.output
    return result.output


def options(name: str):
    return [p for p in typer.main.get_command(app).commands[name].params if p.param_type_name == "option"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize("columns", [60, 80])
def test_nothing_is_cut_or_broken(name, columns):
    text = help_at([name], columns)
    words = text.split()
    for param in options(name):
        for opt in [*param.opts, *param.secondary_opts]:
            assert opt in words or f"{opt}," in words, f"{opt} cut in {name} --help"
        if param.metavar:
            assert param.metavar in words, f"{param.metavar} of {param.opts[0]} cut"
    assert not re.search(r"<(str|int|float|bool|path|list\[\w+\])>", text), "typer's <type> metavars are back"
    for line in text.splitlines():  # a hyphenated name (hf-hub:ORG/REPO, proreg-official+wise) is never split
        assert not re.search(r"\w-$", line), line
        assert "…" not in line


def test_choices_are_listed():
    train = " ".join(help_at(["train"], 80).split())
    assert f"--loss [{'|'.join(METHODS)}]" in train
    assert f"--log [{'|'.join(TRACKERS)}]" in train
    assert "--head [text|trainable|linear]" in train and "--decay [cosine|linear]" in train
    assert "--augment [" in train and "--autocast [auto|" in train


def test_arguments_and_the_command_list():
    assert re.search(r"Usage: \S+ serve \[OPTIONS\] ARTIFACT\n", help_at(["serve"], 80))
    assert re.search(r"Usage: \S+ bench \[OPTIONS\] \[FOLDER\]\n", help_at(["bench"], 80))
    listing = " ".join(help_at([], 80).split())
    for command in typer.main.get_command(app).commands.values():  # type: ignore[attr-defined]
        first = command.short_help or command.help.split("\n\n")[0]
        assert " ".join(first.split()) in listing, f"{command.name}'s description cut in the command list"
    assert "..." not in listing.replace("COMMAND [ARGS]...", "")


def test_datasets_lists_every_suite_whole():
    """`datasets` names every suite (builtin and builtin-holdout too) with its layout and address unbroken."""
    from data.suites.registry import suites

    result = CliRunner().invoke(app, ["datasets"], terminal_width=80)
    assert result.exit_code == 0, result.output
    words = result.output.split()
    for name, suite in suites().items():
        assert f"{name}:" in words
        for text in (suite.info.layout, suite.info.published):
            assert " ".join(words).count(" ".join(text.split())) >= 1, f"{name}: {text!r} broken"
    assert {"builtin:", "builtin-holdout:"} <= set(words)
