"""Test-wide settings: passive OpenMP waits (set before torch loads; see warpc/__init__.py)."""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
