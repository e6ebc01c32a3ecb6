"""Shared test fixtures. The repository root goes on sys.path so plain `pytest` finds `enhance`."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED_DATA = ROOT.parent / "shared" / "datasets" / "LOL-v1-train"

# TEMPORARY (remove before the session ends): a model trains in the background on this 2-core
# machine; one thread per test process avoids OpenMP oversubscription slowing both down 10x.
import os  # noqa: E402

os.environ["OMP_NUM_THREADS"] = "1"
import torch  # noqa: E402

torch.set_num_threads(1)
