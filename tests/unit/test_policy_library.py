"""Hot reload: a changed file applies, a broken edit keeps the previous valid version."""
from __future__ import annotations

from pathlib import Path

from agent.policy.library import PolicyLibrary

KNOWN = {"ptrace", "mount"}.__contains__


def text(name: str, memory: str = "256Mi") -> str:
    return (f"apiVersion: corral/v1\nkind: Policy\nmetadata: {{name: {name}}}\n"
            f"spec:\n  limits: {{memory: {memory}}}\n")


def limits(library: PolicyLibrary) -> dict[str, int]:
    return {p.name: p.limits.memory for p in library.policies()}


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
