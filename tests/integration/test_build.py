"""`corral build` against a real daemon: RUN in real containers, COPY from the context, the cache,
multi-stage builds that compile with the host's gcc, reproducible layers, errors that name the line."""
from __future__ import annotations

import json
import subprocess

import pytest

from tests.integration.build_support import MULTI_STAGE, toolchain_rootfs
from tests.integration.pty_client import PtyClient

pytestmark = pytest.mark.privileged

SIMPLE = """\
# a comment
ARG BASE=busybox
FROM $BASE
ARG GREETING=hello
ENV WHO="the world" \\
    GREETING=${GREETING}
WORKDIR /app
COPY files/ ./
RUN echo "$GREETING, $WHO" > /app/made && ls /app > /app/list
COPY --chown=1000:1000 --chmod=600 files/a /owned
LABEL stage=first
EXPOSE 8080
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=5s --retries=2 CMD cat /app/made
CMD ["cat", "/app/made"]
"""

def _context(tmp_path, dockerfile: str, **files: str):
    context = tmp_path / "context"
    (context / "files").mkdir(parents=True)
    (context / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        path = context / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return context


def _steps(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(("Step", " ---> CACHED"))]


def test_build_runs_copies_and_caches(daemon, tmp_path):
    context = _context(tmp_path, SIMPLE, files__a="one\n", files__b="two\n", files__skip="no\n",
                       **{".dockerignore": "files/skip\n"})
    first = daemon.out("build", "-t", "built:1", "-t", "built:2", "--build-arg", "GREETING=hi", str(context))
    assert "Step 1/12 : FROM busybox" in first and "Successfully tagged built:2" in first
    try:
        assert daemon.out("run", "--rm", "built:1") == "hi, the world"
        assert daemon.out("run", "--rm", "built:2", "cat", "/app/list").split() == ["a", "b", "list", "made"]
        assert daemon.out("run", "--rm", "built:1", "stat", "-c", "%u:%g %a", "/owned") == "1000:1000 600"
        config = json.loads(daemon.out("image", "inspect", "built:1"))[0]["Config"]
        assert config["Labels"] == {"stage": "first"} and config["ExposedPorts"] == {"8080/tcp": {}}
        assert config["StopSignal"] == "SIGQUIT" and config["WorkingDir"] == "/app"
        assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "cat /app/made"], "Interval": 5_000_000_000,
                                         "Retries": 2}
        assert "GREETING=hi" in config["Env"]
        # Unchanged: every layer step comes from the cache.
        again = daemon.out("build", "-t", "built:1", "--build-arg", "GREETING=hi", str(context))
        assert again.count("---> CACHED") == 3
        # One copied file changed: the steps before it stay cached, it and those after are redone.
        (context / "files" / "b").write_text("changed\n")
        changed = _steps(daemon.out("build", "-t", "built:1", "--build-arg", "GREETING=hi", str(context)))
        assert " ---> CACHED" not in changed[changed.index("Step 5/12 : COPY files/ ./") + 1:]
        assert daemon.out("run", "--rm", "built:1", "cat", "/app/b") == "changed"
        # The RUN containers are gone and nothing dangling is left from RUN's starting points.
        assert daemon.out("ps", "-a", "-q") == ""
        assert not any(i["name"] == "<none>" for i in json.loads(daemon.out("images", "--format", "json")))
    finally:
        daemon.cli("image", "rm", "built:1", check=False)
        daemon.cli("image", "rm", "built:2", check=False)


def test_multi_stage_compiles_with_gcc_into_scratch(daemon, tmp_path):
    context = _context(tmp_path, MULTI_STAGE, **{"hello.c": '#include <stdio.h>\nint main(void){puts("static hello");'
                                                      'return 7;}\n'})
    toolchain_rootfs(context / "rootfs")
    (context / ".dockerignore").write_text("Dockerfile\n")
    output = daemon.out("build", "-t", "hello:1", "--build-arg", "SOURCE_DATE_EPOCH=0", str(context))
    assert "Successfully tagged hello:1" in output
    try:
        result = daemon.cli("run", "--rm", "hello:1", check=False)
        assert result.returncode == 7 and result.stdout == b"static hello\n"
        layers = json.loads(daemon.out("image", "inspect", "hello:1"))[0]["RootFS"]["Layers"]
        assert len(layers) == 1             # scratch plus the one copied file
        # Everything cached: the same image; and a build with --no-cache gives the same digests.
        assert daemon.out("build", "-q", "-t", "hello:1", str(context)).startswith("sha256:")
        rebuilt = daemon.out("build", "-q", "--no-cache", "-t", "hello:2", "--build-arg", "SOURCE_DATE_EPOCH=0",
                             str(context))
        assert json.loads(daemon.out("image", "inspect", rebuilt))[0]["RootFS"]["Layers"] == layers
    finally:
        for name in ("hello:1", "hello:2"):
            daemon.cli("image", "rm", name, check=False)


@pytest.mark.parametrize("dockerfile, message", [
    ("FROM busybox\nRUNN echo\n", b"Dockerfile:2: unknown instruction 'RUNN'"),
    ("RUN echo\n", b"Dockerfile:1: RUN before the first FROM"),
    ("FROM busybox\nRUN exit 3\n", b"Dockerfile:2: RUN: the command returned a non-zero code: 3"),
    ("FROM busybox\nCOPY nothere /x\n", b"Dockerfile:2: COPY: 'nothere' is not in the build context"),
    ("FROM busybox\nCOPY --chown=nobody:nogroupx files /x\n", b"'nogroupx' is not in the image's /etc/group"),
    ("FROM busybox\nADD http://example.com/x /x\n", b"sources from URLs are not supported"),
])
def test_errors_name_the_line(daemon, tmp_path, dockerfile, message):
    context = _context(tmp_path, dockerfile)
    result = daemon.cli("build", "-t", "broken:1", str(context), check=False)
    assert result.returncode == 125 and message in result.stderr, result.stderr
    assert not any(i["name"] == "broken" for i in json.loads(daemon.out("images", "--format", "json")))
    assert daemon.out("ps", "-a", "-q") == ""


def test_add_extracts_a_local_archive_and_target_stops_early(daemon, tmp_path):
    import tarfile
    context = _context(tmp_path, "FROM busybox AS one\nADD pack.tar.gz /opt/\nRUN cat /opt/inner/x\n"
                                 "FROM one\nRUN exit 9\n")
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "x").write_text("from the archive\n")
    with tarfile.open(context / "pack.tar.gz", "w:gz") as archive:
        archive.add(inner, arcname="inner")
    output = daemon.out("build", "--target", "one", "-t", "packed:1", str(context))
    try:
        assert "from the archive" in output and "exit 9" not in output
        assert daemon.out("run", "--rm", "packed:1", "cat", "/opt/inner/x") == "from the archive"
    finally:
        daemon.cli("image", "rm", "packed:1", check=False)


PROGRESS = """\
FROM busybox
COPY files/a /a
RUN for i in $(seq 12); do echo out-$i; done; sleep 2
RUN echo made > /made
"""


def _screen(daemon, *args: str) -> tuple[list[str], bytes]:
    """`corral build ARGS` at an 80x60 terminal: the screen's lines when it exits, and every byte it wrote."""
    import pyte  # here, not at the top: the other tests of this file run without it
    term = PtyClient(daemon, "build", *args, rows=60, cols=80)
    try:
        assert term.wait(timeout=120) == 0, term.seen.decode(errors="replace")
    finally:
        term.close()
    screen = pyte.Screen(80, 60)
    pyte.ByteStream(screen).feed(term.seen)
    return [line.rstrip() for line in screen.display if line.strip()], term.seen


def test_progress_tty_draws_steps_cached_and_the_running_output(daemon, tmp_path):
    context = _context(tmp_path, PROGRESS, files__a="a\n")
    try:
        lines, raw = _screen(daemon, "--progress", "tty", "-t", "progress:1", str(context))
        steps = [line.rsplit(" ", 1)[0].rstrip() for line in lines if line.startswith(" => ")]
        assert steps == [" => [1/4] FROM busybox", " => [2/4] COPY files/a /a",
                         " => [3/4] RUN for i in $(seq 12); do echo out-$i; done; sleep 2",
                         " => [4/4] RUN echo made > /made"], lines
        assert all(line.rsplit(" ", 1)[1].endswith("s") for line in lines if line.startswith(" => "))
        assert b" => => # out-12" in raw and b"out-6" not in raw.split(b"out-12")[-1]     # the tail while it ran
        assert lines[-1].startswith("[+] Built ") and lines[-1].endswith("(4 steps, 0 cached), tagged progress:1")
        assert "Step 1/4" not in "\n".join(lines)
        # Again: the layer steps come from the cache and say so.
        lines, _ = _screen(daemon, "--progress", "tty", "-t", "progress:1", str(context))
        assert [line.split("]")[0] for line in lines if "CACHED" in line] == [
            " => CACHED [2/4", " => CACHED [3/4", " => CACHED [4/4"], lines
        assert lines[-1].endswith("(4 steps, 3 cached), tagged progress:1")
        # Plain stays what it was, even at a terminal.
        lines, _ = _screen(daemon, "--progress", "plain", "-t", "progress:1", str(context))
        assert "Step 3/4 : RUN echo made > /made" not in lines and "Step 4/4 : RUN echo made > /made" in lines
        assert lines.count(" ---> CACHED") == 3
    finally:
        daemon.cli("image", "rm", "progress:1", check=False)


def test_run_steps_show_in_events_and_metrics_with_the_build_label(daemon, tmp_path):
    """A RUN step is a container like any other: its lifecycle in `corral events`, its series on
    /metrics with a `build` label. The step waits for a file the test makes with `exec`, so the
    scrape happens while it runs, however slow the host."""
    from tests.integration.corral_daemon import until
    from tests.integration.test_metrics_endpoint import samples, scrape
    context = _context(tmp_path, "FROM busybox\nRUN while [ ! -e /go ]; do sleep 0.1; done; rm /go\n")
    build = subprocess.Popen([*daemon.cli_command(), "build", "--no-cache", "-t", "watched:1", str(context)],
                             env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        step = until(lambda: daemon.out("ps", "-q", "--filter", "label=corral.build"), "the RUN step's container")
        labels = daemon.inspect(step)["Config"]["Labels"]
        build_id = labels["corral.build"]
        assert labels["corral.build.step"] == "2"
        text = until(lambda: (lambda t: t if samples(t, "container_processes", build=build_id) else "")(scrape(daemon)),
                     "the RUN step's series on /metrics")
        assert samples(text, "container_memory_usage_bytes", build=build_id)
        daemon.cli("exec", step, "touch", "/go")
        output = build.communicate(timeout=120)[0].decode()
        assert build.returncode == 0, output
        events = [json.loads(line) for line in daemon.out("events", "--format", "json", "--filter",
                                                          f"container={step}").splitlines()]
        actions = [event.get("Action", event.get("action")) for event in events]
        assert [a for a in actions if a in ("create", "start", "die", "destroy")] == ["create", "start", "die",
                                                                                        "destroy"], events
        assert build_id not in scrape(daemon)                  # its series went with it
    finally:
        if build.poll() is None:
            build.kill()
            build.wait()
        daemon.cli("image", "rm", "watched:1", check=False)
