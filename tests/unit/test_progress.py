"""The status line's text (pure) and its writer on a stream that is or is not a terminal."""
from __future__ import annotations

import io

from kubenet_lab import progress
from kubenet_lab.kernel import steps


def test_every_step_of_a_change_has_its_words():
    assert list(progress.STEP_DONE) == list(steps.STEPS)


def test_a_step_line_says_the_step_its_place_and_the_time():
    assert progress.step_line("up", "demo", "pods-created", steps.STEPS, 1.44) == "up demo: pods created [8/17] 1.4s"
    assert progress.step_line("apply", "x", "locked", steps.STEPS, 0) == "apply x: planning [1/17] 0.0s"
    assert progress.step_line("up", "x", "some-new-step", steps.STEPS, 2) == "up x: some-new-step 2.0s"


def test_a_line_is_cut_to_the_terminal():
    assert progress.fit("abcdef", 80) == "abcdef"
    assert progress.fit("abcdefghij", 8) == "abcdef…"
    assert len(progress.fit("x" * 200, 80)) == 79
    assert progress.fit("abc", 0) == "abc"  # no width known


class Terminal(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_only_a_terminal_gets_progress_and_quiet_silences_it():
    assert progress.on_terminal(False, Terminal(True))
    assert not progress.on_terminal(True, Terminal(True))
    assert not progress.on_terminal(False, Terminal(False))


def test_the_status_line_is_rewritten_in_place_and_cleared():
    term = Terminal(True)
    with progress.Status(True, term) as status:
        status.update("up x: planning [1/16] 0.0s")
        status.update("up x: planned [2/16] 0.1s")
    assert term.getvalue() == ("\r\x1b[Kup x: planning [1/16] 0.0s\r" "\r\x1b[Kup x: planned [2/16] 0.1s\r"
                               "\r\x1b[K")
    silent = Terminal(True)
    with progress.Status(False, silent) as status:
        status.update("up x: planning")
    assert silent.getvalue() == ""


def test_a_terminal_gone_does_not_fail_the_command():
    class Gone(Terminal):
        def write(self, text):
            raise BrokenPipeError

    with progress.Status(True, Gone(True)) as status:
        status.update("up x: planning")
        status.update("up x: planned")  # no raise


def test_steps_reach_their_listener_only_while_it_listens():
    heard: list[str] = []
    with steps.listening(heard.append):
        steps.step("locked")
        steps.step("plan-saved")
    steps.step("locked")
    assert heard == ["locked", "plan-saved"]
