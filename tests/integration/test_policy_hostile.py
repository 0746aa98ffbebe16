"""Hostile policy files hot-loaded into a running daemon's policy folder, for real.

A valid policy (`guard.yaml`: a memory limit and a deny rule for `guard-*` containers) is in
force on a running container. Every file of tests/data/hostile-policies (and a 5 MB one made
here) is then dropped in beside it, and written over it; after each, the daemon must have
reported the file (load error counted, `policy ls` shows it with file:line) and the guard
must still be enforced: the limit still in the container's cgroup, the deny rule still
denying. With every broken file present, a new valid file must still load and apply, and a
new container must start under the guard. `policy replay` of each file answers a 4xx.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
import urllib.request
from pathlib import Path

import pytest

from agent.api.http_unix import request
from tests.integration.corral_daemon import running_daemon
from tests.integration.test_policies import cgroup_file, read_int, wait_until

pytestmark = pytest.mark.privileged

CORPUS = Path(__file__).resolve().parents[1] / "data" / "hostile-policies"
MiB = 1024 * 1024


def policy(name: str, spec: str) -> str:
    return f"apiVersion: corral/v1\nkind: Policy\nmetadata:\n  name: {name}\nspec:\n{spec}"


GUARD = policy("guard", """  selector: {names: ["guard-*"]}
  limits: {memory: 48Mi}
  syscalls:
    - {name: no-mkdir, names: [mkdir, mkdirat], action: deny}
""")
NEW = policy("latecomer", """  selector: {names: ["guard-*"]}
  limits: {pids: 77}
""")
LOCATED = re.compile(r"^(?P<file>/[^:]+):\d+:\d+: \S+: .+$")


@pytest.fixture(scope="module")
def folder():
    directory = Path(tempfile.mkdtemp(prefix="corral-hostile-", dir="/var/tmp"))
    (directory / "guard.yaml").write_text(GUARD)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def daemon(folder):
    with running_daemon("--policies", str(folder), "--policy-interval", "0.25") as instance:
        instance.cli("run", "-d", "--name", "guard-1", "busybox", "sleep", "3600")
        yield instance


def load_errors(daemon) -> float:
    url = f"http://127.0.0.1:{daemon.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("corral_policy_load_errors_total "):
                return float(line.split()[-1])
    return 0.0


def listing(daemon) -> dict:
    return json.loads(daemon.out("policy", "ls", "--format", "json"))


def assert_guard_enforced(daemon, because: str) -> None:
    names = {p["name"] for p in listing(daemon)["policies"]}
    assert "guard" in names, because
    assert read_int(cgroup_file(daemon, "guard-1", "memory.limit_in_bytes")) == 48 * MiB, because
    denied = daemon.cli("exec", "guard-1", "mkdir", "/tmp/denied", check=False)
    assert denied.returncode != 0 and "Operation not permitted" in denied.stderr.decode(), because


def drop(daemon, target: Path, content: bytes, kept: str) -> list[str]:
    """Write `content` to `target`, wait until the daemon counted it as a load error; the
    problems `policy ls` shows for the file (and `kept`, what it says is in force)."""
    before = load_errors(daemon)
    target.write_bytes(content)
    wait_until(lambda: load_errors(daemon) >= before + 1, timeout=20, what=f"{target.name} to be refused")
    problems = listing(daemon)["problems"].get(str(target), [])
    assert problems, f"{target.name}: no problem listed"
    for problem in problems:
        match = LOCATED.match(problem)
        assert match and match["file"] == str(target), problem
    assert f"broken, {kept}: {target}" in daemon.cli("policy", "ls").stderr.decode()
    return problems


def corpus() -> list[tuple[str, bytes]]:
    files = [(p.name, p.read_bytes()) for p in sorted(CORPUS.iterdir())]
    huge = b"apiVersion: corral/v1\nkind: Policy\nmetadata: {name: huge}\nspec:\n" + b"# padding\n" * 500_000
    return files + [("five-megabytes.yaml", huge)]


def test_broken_files_beside_the_guard_leave_it_enforced_and_a_new_file_still_loads(daemon, folder):
    assert_guard_enforced(daemon, "at the start")
    for name, content in corpus():
        drop(daemon, folder / f"beside-{name}", content, "never loaded")
        assert_guard_enforced(daemon, f"with {name} beside it")
    # every broken file present: a new valid file loads and applies to the running container
    (folder / "zz-latecomer.yaml").write_text(NEW)
    wait_until(lambda: "latecomer" in {p["name"] for p in listing(daemon)["policies"]}, timeout=20,
               what="the new valid policy to load")
    pids = cgroup_file(daemon, "guard-1", "pids.max")
    wait_until(lambda: pids.read_text().strip() == "77", timeout=10, what="the new policy's pids limit")
    # and a container started now gets the guard at once
    try:
        daemon.cli("run", "-d", "--name", "guard-2", "busybox", "sleep", "3600")
        assert read_int(cgroup_file(daemon, "guard-2", "memory.limit_in_bytes")) == 48 * MiB
        denied = daemon.cli("exec", "guard-2", "mkdir", "/tmp/denied", check=False)
        assert "Operation not permitted" in denied.stderr.decode()
    finally:
        daemon.cli("rm", "-f", "guard-2", check=False)
        (folder / "zz-latecomer.yaml").unlink()
        for path in folder.glob("beside-*"):
            path.unlink()
    wait_until(lambda: not listing(daemon)["problems"], timeout=20, what="the broken files to be forgotten")


def test_broken_content_written_over_the_guard_keeps_its_previous_version(daemon, folder):
    guard = folder / "guard.yaml"
    try:
        for name, content in corpus():
            drop(daemon, guard, content, "previous version kept")
            assert_guard_enforced(daemon, f"with {name} written over it")
    finally:
        guard.write_text(GUARD)
    wait_until(lambda: not listing(daemon)["problems"], timeout=20, what="the guard to load again")
    assert_guard_enforced(daemon, "after the repair")


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.iterdir()))
def test_replaying_a_hostile_file_is_a_clear_error_and_a_4xx(daemon, name):
    path = CORPUS / name
    cli = daemon.cli("policy", "replay", str(path), check=False)
    err = cli.stderr.decode()
    assert cli.returncode != 0 and "internal error" not in err and "Traceback" not in err, err
    assert re.search(rf"{re.escape(str(path))}:\d+:\d+: ", err), err
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return          # not text: the CLI refuses it itself (above); JSON cannot carry it
    body = json.dumps({"text": text, "file": name}).encode()
    response = request(str(daemon.socket), "POST", "/v1/policies/replay?since=0", body=body,
                       headers={"Content-Type": "application/json"}, timeout=30)
    answer = json.loads(response.read() or b"{}")
    assert 400 <= response.status < 500, (response.status, answer)
    message = answer.get("message", "")
    if "\0" in text:
        assert message     # refused by the API's own checks (no NUL in strings), before any parse
    else:
        assert re.search(rf"{re.escape(name)}:\d+:\d+: ", message), message
