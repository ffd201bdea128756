"""Checks that a compiled model on disk is whole: checksums, ELF sizes, atomic copies.

A compiled model cut short (a full disk, a killed copy, ``truncate``) is
loaded by ``dlopen`` or run without complaint until the missing pages are
touched, and then the process dies of SIGBUS with no message. These checks
run before any use, so that such a build is replaced instead.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path

_CHUNK = 1 << 20
#: sha256 by (path, size, mtime, inode): each file is read once per process
#: unless it changes; a truncation or a rewrite changes the signature.
_DIGESTS: dict[tuple[str, int, int, int], str] = {}


def sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    stat = path.stat()
    signature = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if signature not in _DIGESTS:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while block := f.read(_CHUNK):
                digest.update(block)
        _DIGESTS[signature] = digest.hexdigest()
    return _DIGESTS[signature]


def checksums(directory: Path, files: list[Path]) -> dict[str, str]:
    """sha256 of each file, keyed by its path relative to ``directory``."""
    return {path.relative_to(directory).as_posix(): sha256(path) for path in files}


def mismatch(directory: Path, files: list[Path], recorded: dict[str, str]) -> str | None:
    """How ``files`` differ from their recorded checksums, or None when they match."""
    found = {path.relative_to(directory).as_posix(): path for path in files}
    for name in sorted(set(recorded) - set(found)):
        return f"{name} is missing"
    for name, path in sorted(found.items()):
        if name not in recorded:
            return f"{name} has no recorded checksum"
        if sha256(path) != recorded[name]:
            return f"{name} does not match its recorded sha256 ({path.stat().st_size:,} bytes)"
    return None


def elf_shortfall(path: Path) -> str | None:
    """Why an ELF file is incomplete, or None.

    The file must reach the end of its section-header table and of every
    segment its program headers describe: a copy cut short does not. On
    Linux, where compiled models are ELF, a file that is not ELF is damaged;
    elsewhere it is not judged.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        header = f.read(64)
        if header[:4] != b"\x7fELF":
            return f"{path.name} is not an ELF file ({size:,} bytes)" if sys.platform.startswith("linux") else None
        if len(header) < 52 or header[4] not in (1, 2) or header[5] not in (1, 2):
            return f"{path.name}: a broken ELF header ({size:,} bytes)"
        end = "<" if header[5] == 1 else ">"
        if header[4] == 2:  # 64-bit
            if len(header) < 64:
                return f"{path.name}: a broken ELF header ({size:,} bytes)"
            phoff, shoff = struct.unpack_from(end + "QQ", header, 0x20)
            phentsize, phnum, shentsize, shnum = struct.unpack_from(end + "HHHH", header, 0x36)
            segment = struct.Struct(end + "IIQQQQQQ")  # type, flags, offset, vaddr, paddr, filesz, ...
            offset_field, size_field = 2, 5
        else:
            phoff, shoff = struct.unpack_from(end + "II", header, 0x1C)
            phentsize, phnum, shentsize, shnum = struct.unpack_from(end + "HHHH", header, 0x2A)
            segment = struct.Struct(end + "IIIIIIII")  # type, offset, vaddr, paddr, filesz, ...
            offset_field, size_field = 1, 4
        needed = max(shoff + shentsize * shnum, phoff + phentsize * phnum)
        if size >= phoff + phentsize * phnum and phentsize >= segment.size:
            f.seek(phoff)
            table = f.read(phentsize * phnum)
            for i in range(phnum):
                fields = segment.unpack_from(table, i * phentsize)
                needed = max(needed, fields[offset_field] + fields[size_field])
    if size < needed:
        return f"{path.name} has {size:,} bytes, its ELF headers describe {needed:,}"
    return None


def _strays(source: Path, target: Path, binaries: list[Path]) -> list[Path]:
    """Files in ``target`` of a binary's suffix that ``source`` does not have.

    httpstan loads the first extension module it lists in a model directory,
    so a module left there by an earlier build under another name (builds are
    named by the interpreter that made them) may be loaded instead of the
    verified one, and if it is damaged, crash the process with SIGBUS.
    """
    if not target.is_dir():
        return []
    suffixes = {path.suffix for path in binaries}
    return sorted(path for path in target.iterdir()
                  if path.is_file() and path.suffix in suffixes and not (source / path.name).is_file())


def differences(source: Path, target: Path, binaries: list[Path]) -> str | None:
    """How the copy of ``source`` in ``target`` differs from it, or None when it is whole.

    ``binaries`` (files in ``source``) are compared by sha256; any other file
    of ``source`` need only exist in ``target``, and ``target`` must hold no
    other file of a binary's suffix.
    """
    if not target.is_dir():
        return "no copy"
    for path in sorted(source.iterdir()):
        if not path.is_file():
            continue
        copy = target / path.name
        if not copy.is_file():
            return f"{path.name} is missing"
        size, expected = copy.stat().st_size, path.stat().st_size
        if path in binaries and (size != expected or sha256(copy) != sha256(path)):
            return f"{path.name} differs from the verified build ({size:,} bytes, not {expected:,})"
    for stray in _strays(source, target, binaries):
        return f"it also holds {stray.name} ({stray.stat().st_size:,} bytes), not part of the verified build"
    return None


def copy_files(source: Path, target: Path, binaries: list[Path] | None = None) -> None:
    """Copy the files of ``source`` into ``target``, each replaced in one step,
    then remove the files of ``target`` that :func:`differences` calls strays.

    A process that has the old file mapped keeps its pages (the new file is a
    new inode, and a removed file lives on while mapped); overwriting in place
    would pull them from under it (SIGBUS).
    """
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        if not path.is_file():
            continue
        fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            shutil.copy2(path, tmp)
            os.replace(tmp, target / path.name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    for stray in _strays(source, target, binaries or []):
        stray.unlink(missing_ok=True)
