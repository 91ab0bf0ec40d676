"""The compiled artefact: a TVM shared library with tvmconv's metadata appended after the ELF image.

Layout: [library][metadata JSON][JSON length, 8 bytes LE][MAGIC]. The dynamic loader ignores bytes
past the ELF image, so the file stays one loadable .so that carries its own input/output names,
shapes, target, the layer and FLOPs of each kernel symbol (for ``Model.profile``) and a checksum
of the library part (a truncated or altered file is refused with a clear error).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

from .errors import ArtefactError, require_file

MAGIC = b"TVMCONV\x01"
# 2: a model whose metadata says "load_weights" makes some weights as it loads (``LOAD_FUNC``)
FORMAT = 2
# The VM function that makes, from weights kept in the artefact, the ones ``main`` takes first
# (Winograd's taps): called once as the artefact loads (``build.lower``, ``runtime.Model``).
LOAD_FUNC = "load_weights"


def _digest(library: "hashlib._Hash", meta: dict) -> str:
    """Checksum of the library bytes and every metadata field but the checksum itself."""
    body = {k: v for k, v in meta.items() if k != "sha256"}
    library.update(json.dumps(body, sort_keys=True).encode())
    return library.hexdigest()


def append_metadata(path: Path, meta: dict) -> None:
    data = Path(path).read_bytes()
    meta = {**meta, "format": FORMAT}
    meta["sha256"] = _digest(hashlib.sha256(data), meta)
    blob = json.dumps(meta, sort_keys=True).encode()
    with open(path, "ab") as f:
        f.write(blob + struct.pack("<Q", len(blob)) + MAGIC)


def read_metadata(path: str | os.PathLike) -> tuple[dict, int]:
    """(metadata, size of the library part); ArtefactError if the file is not a sound artefact."""
    path = require_file(path, "artefact", ArtefactError)
    size = path.stat().st_size
    with open(path, "rb") as f:
        if size < 16:
            raise ArtefactError(f"{path} is not a tvmconv artefact (too small)")
        f.seek(size - 16)
        (length,), magic = struct.unpack("<Q", f.read(8)), f.read(8)
        if magic != MAGIC:
            raise ArtefactError(f"{path} is not a tvmconv artefact, or it is truncated "
                                "(no metadata trailer); compile it again with tvmconv.compile")
        lib_size = size - 16 - length
        if length > size or lib_size <= 0:
            raise ArtefactError(f"{path} is corrupt (bad metadata length)")
        f.seek(lib_size)
        try:
            meta = json.loads(f.read(length))
        except ValueError:
            raise ArtefactError(f"{path} is corrupt (metadata is not JSON)") from None
        f.seek(0)
        digest = hashlib.sha256()
        left = lib_size
        while left:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
    if not isinstance(meta, dict) or _digest(digest, meta) != meta.get("sha256"):
        raise ArtefactError(f"{path} is corrupt: its library or metadata does not match the "
                            "checksum")
    if not isinstance(meta.get("format"), int) or meta["format"] > FORMAT:
        raise ArtefactError(f"{path} was written by a newer tvmconv (artefact format "
                            f"{meta.get('format')!r}; this one reads up to {FORMAT}): upgrade "
                            "tvmconv where it runs")
    return meta, lib_size
