"""`python -m agent.images build-busybox --root DIR`: set-up builds the embedded default image
without a daemon (the store is a plain directory tree)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.errors import CorralError
from agent.images.store import ImageStore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.images")
    parser.add_argument("command", choices=["build-busybox"])
    parser.add_argument("--root", type=Path, default=Path("/var/lib/corral"))
    parser.add_argument("--busybox", default="/bin/busybox")
    args = parser.parse_args(argv)
    try:
        image = ImageStore(args.root).build_busybox(args.busybox)
    except CorralError as exc:
        print(f"corral: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"{image.name}:{image.tag} {image.short_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
