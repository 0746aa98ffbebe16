"""The tty build display: steps, CACHED, the output tail under the running step, widths."""
from __future__ import annotations

import io

from agent.cli.build_progress import TAIL, BuildProgress, TerminalDisplay


def _step(number: int, count: int, text: str, stage: str = "") -> dict:
    return {"stream": f"Step {number}/{count} : {text}\n",
            "step": {"stage": stage, "number": number, "count": count, "text": text}}


def test_steps_cached_output_and_summary():
    progress = BuildProgress(started=100.0)
    progress.feed(_step(1, 3, "FROM busybox"), 100.0)
    progress.feed(_step(2, 3, "COPY a /a"), 100.5)
    progress.feed({"stream": " ---> CACHED\n", "cached": True}, 100.5)
    progress.feed({"stream": " ---> 0123456789ab\n", "layer": "sha256:0123"}, 100.5)
    progress.feed(_step(3, 3, "RUN make"), 101.0)
    for number in range(10):
        progress.feed({"stream": f"line {number}\n"}, 101.0)
    progress.feed({"stream": "partial"}, 101.0)
    assert progress.take_finished(60) == [
        " => [1/3] FROM busybox" + " " * 34 + "0.5s",
        " => CACHED [2/3] COPY a /a" + " " * 30 + "0.5s"]
    assert progress.take_finished(60) == []             # each finished step is handed out once
    live = progress.live(103.25, 60)
    assert live[0].startswith(" => [3/3] RUN make") and live[0].endswith("2.2s") and len(live[0]) == 60
    assert live[1:] == [f" => => # line {n}" for n in range(5, 10)] + [" => => # partial"]
    assert len(live) == 1 + TAIL
    progress.feed({"stream": "Successfully built 0123\n", "built": "sha256:" + "ab" * 32}, 104.0)
    progress.feed({"stream": "Successfully tagged x:1\n", "tagged": "x:1"}, 104.0)
    progress.finish(104.0)
    assert progress.live(105.0, 60) == []
    assert progress.take_finished(60) == [" => [3/3] RUN make" + " " * 38 + "3.0s"]   # output collapsed
    assert progress.summary(105.0) == "[+] Built abababababab in 4.0s (3 steps, 1 cached), tagged x:1"


def test_a_failed_step_keeps_its_output_and_stage_names_show():
    progress = BuildProgress(started=0.0)
    progress.feed(_step(1, 2, "FROM busybox AS build", "build"), 0.0)
    progress.feed(_step(2, 2, "RUN false", "build"), 1.0)
    progress.feed({"stream": "\x1b[31mno\x1b[0m good\r\n"}, 1.0)
    progress.fail(2.0)
    lines = progress.take_finished(60)
    assert lines[0].startswith(" => [build 1/2] FROM busybox AS build")
    assert lines[1].startswith(" => ERROR [build 2/2] RUN false") and lines[1].endswith("1.0s")
    assert lines[2] == " => => # no good"
    assert progress.summary(2.0) == "[+] Build failed after 2.0s (2 steps, 0 cached)"


def test_narrow_terminal_cuts_lines_without_wrapping():
    progress = BuildProgress(started=0.0)
    progress.feed(_step(1, 1, "RUN " + "x" * 200), 0.0)
    progress.feed({"stream": "y" * 200 + "\n"}, 0.0)
    for line in progress.live(1.0, 30):
        assert len(line) < 31
    assert progress.live(1.0, 30)[0].endswith("1.0s")


def test_terminal_display_redraws_only_the_live_lines():
    out = io.StringIO()
    now = [0.0]
    display = TerminalDisplay(out, lambda: 70, clock=lambda: now[0])
    display.feed(_step(1, 2, "FROM busybox"))
    display.feed(_step(2, 2, "RUN true"))
    display.feed({"stream": "hello\n"})
    now[0] = 1.0
    display.feed({"stream": "Successfully built x\n", "built": "sha256:" + "cd" * 32})
    display.close(ok=True)
    text = out.getvalue()
    assert text.count(" => [1/2] FROM busybox") == 2          # drawn live once, then printed once
    assert "\x1b[1F" in text                                  # went back over the one live line
    assert text.endswith("[+] Built cdcdcdcdcdcd in 1.0s (2 steps, 0 cached)\n\x1b[?25h")
