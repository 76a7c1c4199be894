"""The committed wire modules are exactly what the .proto files generate."""

from __future__ import annotations

from pathlib import Path

from muster.protogen import generate

ROOT = Path(__file__).resolve().parents[2]


def test_generated_modules_match_the_proto_files(tmp_path: Path) -> None:
    """Regenerating into a temp dir gives byte-identical modules to those committed in muster/v1."""
    generated = generate(ROOT / "proto", tmp_path)
    assert generated, "protoc produced nothing"
    committed = sorted(p.name for p in (ROOT / "muster/v1").glob("*_pb2*.py*"))
    assert sorted(p.name for p in generated) == committed
    for path in generated:
        ours = (ROOT / "muster/v1" / path.name).read_bytes()
        assert path.read_bytes() == ours, (
            f"muster/v1/{path.name} is stale: run scripts/gen_proto.py"
        )
