"""Name the globals a pickle references, by reading its opcodes: nothing is unpickled.

Used only to word the refusal of a checkpoint that a weights-only load rejected (did it
try to run code, or is it a pickled full model?). Safety never depends on this scan.
"""

from __future__ import annotations

import pickletools
import zipfile
from pathlib import Path

MAX_PICKLE_BYTES = 64 * 1024 * 1024  # scan at most this much of the pickle stream
MAX_OPCODES = 2_000_000

# Modules whose globals in a checkpoint can only mean "run code".
_CODE_MODULES = frozenset(
    {
        "os", "posix", "nt", "subprocess", "builtins", "__builtin__", "sys", "shutil",
        "socket", "importlib", "runpy", "pty", "ctypes", "code", "codeop", "webbrowser",
        "multiprocessing", "pickle", "_pickle", "marshal", "types", "operator", "functools",
        "commands", "platform", "asyncio", "pdb", "timeit", "cProfile", "profile",
    }
)  # fmt: skip
# Plain containers that pickled modules reference (e.g. `builtins.set` for hook sets).
_INERT_BUILTINS = frozenset(
    f"{m}.{n}"
    for m in ("builtins", "__builtin__")
    for n in ("set", "frozenset", "dict", "list", "tuple", "bytearray", "slice", "object",
              "int", "float", "complex", "str", "bytes", "bool")
)  # fmt: skip
_STRING_OPS = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING"}
)


def _pickle_bytes(path: Path) -> bytes:
    """The main pickle of a torch zip checkpoint, or the raw bytes of a legacy one."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("data.pkl")]
            if not names:
                return b""
            with archive.open(names[0]) as member:
                return member.read(MAX_PICKLE_BYTES)
    with path.open("rb") as f:
        return f.read(MAX_PICKLE_BYTES)


def referenced_globals(path: Path) -> list[str]:
    """`module.name` of every global the pickle stream(s) in `path` would import, in order."""
    try:
        data = _pickle_bytes(path)
    except (OSError, zipfile.BadZipFile, RuntimeError):
        return []
    found: list[str] = []
    strings: list[str] = []
    pos, count = 0, 0
    # A legacy torch file is several pickles back to back: scan each in turn.
    while pos < len(data) and count < MAX_OPCODES:
        start = pos
        try:
            for opcode, arg, offset in pickletools.genops(data[pos:]):
                count += 1
                pos = start + (offset or 0) + 1
                if opcode.name in _STRING_OPS and isinstance(arg, str | bytes):
                    strings.append(arg if isinstance(arg, str) else arg.decode("latin-1"))
                    strings = strings[-2:]
                elif opcode.name in ("GLOBAL", "INST") and isinstance(arg, str):
                    found.append(arg.replace(" ", "."))
                elif opcode.name == "STACK_GLOBAL" and len(strings) == 2:
                    found.append(".".join(strings))
                if opcode.name == "STOP" or count >= MAX_OPCODES:
                    break
        except Exception:  # malformed streams end the scan; the names found so far stand
            break
        if pos <= start:
            break
    return list(dict.fromkeys(found))


def code_globals(names: list[str]) -> list[str]:
    """The names that can run code when unpickled."""
    return [n for n in names if n.split(".", 1)[0] in _CODE_MODULES and n not in _INERT_BUILTINS]


def module_globals(names: list[str]) -> list[str]:
    """The names that look like model classes (a whole pickled `nn.Module`)."""
    benign = ("torch.", "collections.", "_codecs.")
    return [
        n
        for n in names
        if n.startswith("torch.nn.modules.")
        or (not n.startswith(benign) and n.split(".", 1)[0] not in _CODE_MODULES)
    ]
