"""Puts tests/unit on the import path, so that every test folder can import `waiting`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
