"""Puts tests/soak on the import path: its pure modules are tested here."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "soak"))
