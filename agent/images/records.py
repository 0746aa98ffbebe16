"""The store's JSON records: written atomically, read back with an error that names a corrupt file."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.atomic_file import write_atomically
from agent.errors import CorralError


def write_json(path: Path, data: Any) -> None:
    """Atomically: readers see the old file or the new one, never half of one."""
    write_atomically(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: Path, what: str,
              hint: str = "remove the file; the image it describes must then be imported again") -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CorralError(f"{what} {str(path)!r} is corrupt: {exc}", hint=hint) from None
