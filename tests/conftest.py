"""Test-wide settings: passive OpenMP waits (set before torch loads; see warpc/__init__.py)."""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # tests/bad_inputs and the shared test helpers

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
