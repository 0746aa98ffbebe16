"""`--env-file FILE`: docker's format, read by the CLI (the daemon may not see this machine's files).

One variable a line: `KEY=VALUE` taken as it is (no quotes removed, trailing spaces kept), a
bare `KEY` takes its value from the CLI's environment and is left out when unset there, blank
lines and lines starting with `#` are skipped. A name with whitespace in it, or no name, is an
error naming the file and the line.
"""
from __future__ import annotations

from typing import Mapping

from agent.errors import InvalidArgument

# More than docker reads in practice, and a bound on what one flag can send.
MAX_BYTES = 1 << 20


def parse_env_file(text: str, environ: Mapping[str, str], where: str) -> list[str]:
    """The `KEY=VALUE` entries of an env file's text, in order."""
    result = []
    for number, raw in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not name:
            raise InvalidArgument(f"{where}:{number}: no variable name before '='", field="--env-file")
        if any(char.isspace() for char in name):
            raise InvalidArgument(f"{where}:{number}: variable {name!r} contains whitespace", field="--env-file")
        if "\x00" in line:
            raise InvalidArgument(f"{where}:{number}: the line contains a NUL byte", field="--env-file")
        if sep:
            result.append(f"{name}={value}")
        elif name in environ:
            result.append(f"{name}={environ[name]}")
    return result


def read_env_files(paths: list[str], environ: Mapping[str, str]) -> list[str]:
    """Every file's entries, in the order given; a file that cannot be read names itself."""
    result = []
    for path in paths:
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_BYTES + 1)
        except OSError as exc:
            raise InvalidArgument(f"--env-file {path}: {exc.strerror}", field="--env-file") from None
        if len(data) > MAX_BYTES:
            raise InvalidArgument(f"--env-file {path}: larger than {MAX_BYTES} bytes", field="--env-file")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArgument(f"--env-file {path}: not UTF-8 text", field="--env-file") from None
        result += parse_env_file(text, environ, f"--env-file {path}")
    return result
