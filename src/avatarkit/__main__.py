"""``python -m avatarkit``: the same command line as ``avatarkit``."""

from avatarkit.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
