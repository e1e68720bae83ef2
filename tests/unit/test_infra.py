"""Checks of the set-up and CI files that can run without a VM or a GitHub runner.

Neither `vagrant up` nor a GitHub workflow can run here, so these check what can be checked:
the files parse, the linters accept them where the linters are installed (setup.sh
--with-dev-tools installs them), and CI runs the very command the README tells people to run.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = [ROOT / "setup.sh", ROOT / ".ci" / "run"]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (./setup.sh --with-dev-tools installs it)")
    return path


@pytest.fixture
def vagrant_env(tmp_path: Path) -> dict[str, str]:
    """Keeps vagrant's state in tmp_path: nothing lands in ~/.vagrant.d or the checkout."""
    return {
        **os.environ,
        "VAGRANT_CWD": str(ROOT),
        "VAGRANT_HOME": str(tmp_path / "vagrant.d"),
        "VAGRANT_DOTFILE_PATH": str(tmp_path / "dotfile"),
        "VAGRANT_CHECKPOINT_DISABLE": "1",
    }


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_is_valid_bash(script: Path) -> None:
    result = run(["bash", "-n", str(script)])
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_is_executable(script: Path) -> None:
    assert os.access(script, os.X_OK), f"{script} is not executable (chmod +x)"


def test_scripts_pass_shellcheck() -> None:
    shellcheck = require("shellcheck")
    result = run([shellcheck, *map(str, SCRIPTS)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_setup_leaves_the_host_network_alone() -> None:
    code = [line for line in (ROOT / "setup.sh").read_text().splitlines()
            if not line.lstrip().startswith("#")]
    offending = [line for line in code
                 if re.search(r"\bsysctl\b|\bip\s+(link|addr|address|route|rule)\b"
                              r"|\biptables\b\s+-|\bnft\s+(add|flush|delete|-f)", line)]
    assert not offending, offending


def test_vagrantfile_validates_without_a_provider(vagrant_env: dict[str, str]) -> None:
    vagrant = require("vagrant")
    # --ignore-provider: plain `vagrant validate` needs a usable provider (VirtualBox or the
    # vagrant-libvirt plugin); this way it checks everything else on any machine.
    result = run([vagrant, "validate", "--ignore-provider"], env=vagrant_env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_vagrantfile_libvirt_settings_validate(vagrant_env: dict[str, str]) -> None:
    vagrant = require("vagrant")
    plugins = run([vagrant, "plugin", "list"], env=vagrant_env).stdout
    if "vagrant-libvirt" not in plugins:
        pytest.skip("the vagrant-libvirt plugin is not installed, so its settings cannot be checked")
    env = {**vagrant_env, "VAGRANT_DEFAULT_PROVIDER": "libvirt"}
    result = run([vagrant, "validate"], env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_passes_actionlint() -> None:
    actionlint = require("actionlint")
    # actionlint finds the repository root itself; give it the file explicitly all the same.
    result = run([actionlint, str(WORKFLOW.relative_to(ROOT))], cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_runs_the_ci_script_as_root() -> None:
    assert re.search(r"run:\s*sudo\b.*\bbash \.ci/run\b", WORKFLOW.read_text())


def readme_test_command(readme: str) -> str:
    """The pytest line of the README's fenced code blocks, without a shell prompt."""
    in_fence = False
    for line in readme.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        elif in_fence and re.search(r"\bpython3 -m pytest\b", line):
            return re.sub(r"^\s*(\$|#)\s+", "", line).strip()
    raise AssertionError("README.md shows no `python3 -m pytest` command in a code block")


def test_ci_runs_the_readme_test_command() -> None:
    readme = ROOT / "README.md"
    if not readme.exists():
        pytest.skip("README.md does not exist yet")
    command = readme_test_command(readme.read_text())
    assert command.startswith("sudo "), f"the README's test command should run as root: {command!r}"
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if not line.lstrip().startswith("#")]
    # .ci/run runs as root already and adds sudo only when it is not.
    assert any(command.removeprefix("sudo ") in line for line in ci_lines), (
        f".ci/run does not run the README's test command {command!r}")


def test_ci_runs_the_linters_the_readme_names_and_the_test_extras_install() -> None:
    readme = (ROOT / "README.md").read_text()
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if not line.lstrip().startswith("#")]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    for tool, command in (("ruff", "ruff check"), ("mypy", "mypy")):
        assert f"`{command}" in readme, f"the README does not name `{command}`"
        assert any(f"python3 -m {command}" in line for line in ci_lines), f".ci/run does not run {command}"
        assert any(re.match(rf"{tool}\b", req) for req in extras), f"the test extras do not install {tool}"


def test_readme_test_command_is_found_in_fenced_blocks() -> None:
    readme = "intro `python3 -m pytest -x`\n```sh\n$ sudo python3 -m pytest -q tests\n```\n"
    assert readme_test_command(readme) == "sudo python3 -m pytest -q tests"


# The suite run as CI runs it, on a kernel without the bridge netfilter module (made so by
# replacing the check's answer in the pytest process): the integration tests are left out, the
# unit tests still run, and the run fails with one line naming the module.
WITHOUT_BR_NETFILTER = """
import sys
import pytest
from kubenet_lab.fabric import checks
checks.bridge_netfilter_problem = lambda: "the kernel module br_netfilter is not loaded (test)"
sys.exit(pytest.main(sys.argv[1:]))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="without root the integration tests skip themselves")
def test_without_br_netfilter_the_suite_fails_with_one_line_naming_the_module() -> None:
    result = run(["python3", "-c", WITHOUT_BR_NETFILTER, "-q", "-p", "no:cacheprovider",
                  "tests/integration/test_dns_server.py", "tests/unit/test_state.py"], cwd=ROOT)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    not_run = [line for line in out.splitlines() if "integration tests not run" in line]
    assert len(not_run) == 1 and "br_netfilter is not loaded" in not_run[0], out
    assert re.search(r"\b\d+ passed, \d+ deselected\b", out), out
    assert "error" not in out.replace(not_run[0], "").lower(), out
