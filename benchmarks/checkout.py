"""This checkout first on sys.path: a benchmark run as a script measures the tree it lives in.

The venv has the main checkout installed (editable), so without this a benchmark run from another
worktree would import, and measure, main's code; the tests' helpers are not installed at all.
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
