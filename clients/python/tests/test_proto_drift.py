"""The committed _pb2 modules are exactly what scripts/gen_proto.sh makes
from proto/leanauth/v1 now: regenerate into a temp dir and compare."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import CLIENT_DIR

COMMITTED = CLIENT_DIR / "src" / "leanauth" / "_proto"
SCRIPT = CLIENT_DIR / "scripts" / "gen_proto.sh"


def _files(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def test_generated_code_has_not_drifted(tmp_path: Path) -> None:
    if shutil.which("protoc") is None:
        pytest.fail("protoc is needed to check the generated code (apt-get install protobuf-compiler)")
    subprocess.run(["sh", str(SCRIPT), str(tmp_path)], check=True, timeout=60)
    fresh, committed = _files(tmp_path), _files(COMMITTED)
    assert sorted(fresh) == sorted(committed), "files differ: run clients/python/scripts/gen_proto.sh"
    stale = [name for name in fresh if not filecmp.cmp(fresh[name], committed[name], shallow=False)]
    assert not stale, f"stale generated files {stale}: run clients/python/scripts/gen_proto.sh"
