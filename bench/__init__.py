"""Benchmarks: each prints its figures beside a baseline measured in the same run."""
import sys
from pathlib import Path

# The shared layer, importable as Lambda's /opt/python makes it.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "layers" / "shared"))
