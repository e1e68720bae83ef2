"""Errors every layer may raise; the CLI maps them to exit codes."""
from __future__ import annotations


class LabError(Exception):
    """A failure the user can act on; the message says what to do. Exit status 1."""


class InputError(LabError):
    """Bad manifests or options: nothing was changed. Exit status 2.

    `problems` holds every problem found, each as `file:line: field.path: what was expected`."""

    def __init__(self, problems: list[str] | str):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class EnvironmentProblem(LabError):
    """Not root, or a system tool is missing. Exit status 1."""
