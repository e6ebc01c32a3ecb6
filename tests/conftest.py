"""Shared test fixtures. The repository root goes on sys.path so plain `pytest` finds `enhance`."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED_DATA = ROOT.parent / "shared" / "datasets" / "LOL-v1-train"
