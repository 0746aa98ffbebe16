"""Hot reload: a changed file applies, a broken edit keeps the previous valid version."""
from __future__ import annotations

from pathlib import Path

from agent.policy.library import PolicyLibrary

KNOWN = {"ptrace", "mount"}.__contains__


def text(name: str, memory: str = "256Mi") -> str:
    return (f"apiVersion: corral/v1\nkind: Policy\nmetadata: {{name: {name}}}\n"
            f"spec:\n  limits: {{memory: {memory}}}\n")


def limits(library: PolicyLibrary) -> dict[str, int]:
    return {p.name: p.limits.memory_bytes for p in library.policies()}


def test_load_change_break_and_delete(tmp_path: Path):
    web = tmp_path / "web.yaml"
    web.write_text(text("web"))
    (tmp_path / "notes.txt").write_text("ignored")
    library = PolicyLibrary(str(tmp_path), syscall_known=KNOWN)
    report = library.reload()
    assert report.loaded == (str(web),) and report.changed
    assert limits(library) == {"web": 256 << 20}
    assert not library.reload().changed                 # nothing changed: nothing reloaded

    web.write_text(text("web", "512Mi"))
    assert library.reload().loaded == (str(web),)
    assert limits(library) == {"web": 512 << 20}

    web.write_text(text("web", "lots"))
    report = library.reload()
    assert not report.changed
    [problem] = report.failed[str(web)]
    assert str(problem).startswith(f"{web}:5:20: spec.limits.memory: expected a size")
    assert limits(library) == {"web": 512 << 20}        # the previous valid version stays
    assert str(web) in library.problems()

    web.write_text(text("web", "128Mi"))
    assert library.reload().loaded == (str(web),)
    assert library.problems() == {} and limits(library) == {"web": 128 << 20}

    web.unlink()
    assert library.reload().removed == (str(web),)
    assert library.policies() == []


def test_a_new_file_reusing_a_name_in_force_is_refused(tmp_path: Path):
    (tmp_path / "a.yaml").write_text(text("shared"))
    library = PolicyLibrary(str(tmp_path), syscall_known=KNOWN)
    library.reload()
    (tmp_path / "b.yaml").write_text(text("shared", "1Gi"))
    report = library.reload()
    assert "already used in" in str(report.failed[str(tmp_path / "b.yaml")][0])
    assert limits(library) == {"shared": 256 << 20}


def test_a_broken_file_at_start_loads_nothing_from_it(tmp_path: Path):
    (tmp_path / "bad.yaml").write_text("spec: [")
    (tmp_path / "good.yaml").write_text(text("good"))
    library = PolicyLibrary(str(tmp_path), syscall_known=KNOWN)
    report = library.reload()
    assert report.loaded == (str(tmp_path / "good.yaml"),)
    assert list(report.failed) == [str(tmp_path / "bad.yaml")]
    assert [p.name for p in library.policies()] == ["good"]


def test_broken_files_never_stop_a_new_valid_file_from_loading(tmp_path: Path):
    # Sorted before the valid ones: a crash or a stall in one used to end the whole reload.
    (tmp_path / "a-recursive.yaml").write_text("a: &x [*x]\n")
    (tmp_path / "b-deep.yaml").write_text("spec: " + "[" * 50_000 + "]" * 50_000 + "\n")
    (tmp_path / "c-laughs.yaml").write_text(
        "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        + "".join(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 10)))
    (tmp_path / "m-old.yaml").write_text(text("old"))
    library = PolicyLibrary(str(tmp_path), syscall_known=KNOWN)
    report = library.reload()
    assert sorted(report.failed) == [str(tmp_path / n) for n in ("a-recursive.yaml", "b-deep.yaml", "c-laughs.yaml")]
    (tmp_path / "z-new.yaml").write_text(text("new"))
    assert library.reload().loaded == (str(tmp_path / "z-new.yaml"),)
    assert sorted(limits(library)) == ["new", "old"]


def test_an_empty_or_truncated_file_keeps_the_previous_version(tmp_path: Path):
    web = tmp_path / "web.yaml"
    web.write_text(text("web"))
    library = PolicyLibrary(str(tmp_path), syscall_known=KNOWN)
    library.reload()
    for content in ("", "\n", "# all gone\n", text("web")[:40], text("web").rsplit("{", 1)[0]):
        web.write_text(content)
        report = library.reload()
        assert str(web) in report.failed, repr(content)
        assert limits(library) == {"web": 256 << 20}, repr(content)
    web.unlink()
    assert library.reload().removed == (str(web),) and library.policies() == []


def test_readers_never_wait_for_a_file_being_parsed(tmp_path: Path):
    import threading
    (tmp_path / "a.yaml").write_text(text("a"))
    parsing, release = threading.Event(), threading.Event()

    def slow_known(name: str) -> bool:       # called while a file with syscalls is checked
        parsing.set()
        release.wait(10)
        return True

    library = PolicyLibrary(str(tmp_path), syscall_known=slow_known)
    library.reload()
    (tmp_path / "b.yaml").write_text(text("b") + "  syscalls: [{names: [ptrace], action: deny}]\n")
    reloading = threading.Thread(target=library.reload)
    reloading.start()
    try:
        assert parsing.wait(10)
        assert [p.name for p in library.policies()] == ["a"]     # the last good set, at once
        assert library.problems() == {}
    finally:
        release.set()
        reloading.join(10)
    assert sorted(p.name for p in library.policies()) == ["a", "b"]


def test_an_oversized_file_is_refused_and_only_its_head_is_read(tmp_path: Path):
    from agent.policy.yaml_source import YamlLimits
    big = tmp_path / "big.yaml"
    big.write_text(text("big") + "# " + "x" * 5000 + "\n")
    library = PolicyLibrary(str(tmp_path), syscall_known=KNOWN, limits=YamlLimits(max_bytes=4096))
    [problem] = library.reload().failed[str(big)]
    assert str(problem) == f"{big}:1:1: (file): file is larger than the limit of 4096 bytes (--policy-max-size)"
