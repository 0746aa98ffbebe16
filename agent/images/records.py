"""The store's JSON records: written atomically, read back with an error that names a corrupt file."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from agent.errors import CorralError


def write_json(path: Path, data: Any) -> None:
    """Atomically: readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_json(path: Path, what: str,
              hint: str = "remove the file; the image it describes must then be imported again") -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CorralError(f"{what} {str(path)!r} is corrupt: {exc}", hint=hint) from None
