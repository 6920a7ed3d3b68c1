"""``python -m avatarkit.devserver``: same as ``avatarkit serve``."""

from __future__ import annotations

import sys

from ._cli import serve_main

if __name__ == "__main__":
    sys.exit(serve_main(sys.argv[1:]))
