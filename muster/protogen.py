"""Generation of the wire modules (protobuf messages, gRPC stubs and their type stubs).

Kept in the package so the drift test and ``scripts/gen_proto.py`` run exactly the same command.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from muster.errors import MusterError

__all__ = ["ProtoGenerationError", "generate"]


class ProtoGenerationError(MusterError):
    """protoc failed: the .proto files do not compile."""


def generate(proto_root: Path, out_root: Path) -> list[Path]:
    """Compile every ``muster/v1/*.proto`` under ``proto_root`` into ``out_root/muster/v1``."""
    from grpc_tools import protoc  # dev dependency: only needed when generating

    protos = sorted(
        str(p.relative_to(proto_root)) for p in (proto_root / "muster/v1").glob("*.proto")
    )
    (out_root / "muster/v1").mkdir(parents=True, exist_ok=True)
    # The plugins are console scripts of mypy-protobuf, installed beside this interpreter.
    search = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    mypy_plugin = shutil.which("protoc-gen-mypy", path=search)
    mypy_grpc_plugin = shutil.which("protoc-gen-mypy_grpc", path=search)
    if not mypy_plugin or not mypy_grpc_plugin:
        raise ProtoGenerationError("protoc-gen-mypy 不可用: install the dev extras (mypy-protobuf)")
    well_known = Path(protoc.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{proto_root}",
        f"-I{well_known}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--plugin=protoc-gen-mypy={mypy_plugin}",
        f"--plugin=protoc-gen-mypy_grpc={mypy_grpc_plugin}",
        f"--mypy_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise ProtoGenerationError(f"protoc failed on {protos}")
    return sorted((out_root / "muster/v1").glob("*_pb2*.py*"))
