"""Regenerate the committed wire modules under muster/v1/ from proto/muster/v1/*.proto.

Usage: python scripts/gen_proto.py [OUT_DIR]   (default: the repository root)
The test suite runs this into a temporary directory and compares with what is committed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from muster.protogen import generate

if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else root
    generate(root / "proto", out)
    print(f"generated into {out}")
