"""DMSL Studio - start the desktop app (same as the ``dmsl-studio`` command)."""
import sys

from app.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
