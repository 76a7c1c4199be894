"""Every error class of ours sits in the one tree (muster.errors' docstring draws it): callers
can catch ``MusterError`` at any edge and nothing of ours escapes as a bare Exception."""

from __future__ import annotations

import ast
from pathlib import Path

import muster.errors

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("muster", "edge", "controller", "provisioning")


def _exception_classes() -> list[tuple[str, str, int]]:
    import importlib

    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name.endswith(("_pb2.py", "_pb2_grpc.py")) or "versions" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names = [
                n.name
                for n in tree.body
                if isinstance(n, ast.ClassDef) and not n.name.startswith("_")
            ]
            if not names:
                continue
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            loaded = importlib.import_module(module.removesuffix(".__init__"))
            for name in names:
                value = getattr(loaded, name)
                if isinstance(value, type) and issubclass(value, BaseException):
                    found.append((module, name, value.__mro__.index(BaseException)))
    return found


def test_every_error_class_is_a_muster_error() -> None:
    """No public exception class of ours derives from Exception or ValueError alone."""
    import importlib

    strays = [
        f"{module}.{name}"
        for module, name, _depth in _exception_classes()
        if not issubclass(
            getattr(importlib.import_module(module.removesuffix(".__init__")), name),
            muster.errors.MusterError,
        )
    ]
    assert not strays, strays


def test_the_tree_in_the_docstring_names_every_error_class() -> None:
    """A new error class is added to the drawn tree, so a reader finds it there."""
    doc = muster.errors.__doc__ or ""
    missing = [f"{m}.{n}" for m, n, _ in _exception_classes() if n not in doc]
    assert not missing, missing
