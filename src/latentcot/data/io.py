"""Reading and writing problem files: the reference JSON list, JSONL, and iCoT's text format.

Every malformed input raises one :class:`DataError` naming the file, the record or line, and the field.
Writers go through a temporary file and a rename, so an interrupted write never leaves half a file
where a good one was.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from ..errors import UsageError
from .records import DataError, Record

ICOT_QUESTION_SEP = "||"
ICOT_ANSWER_SEP = "####"
# GSM8k-Aug writes each calculation as <<expr=value>>; that bracket is the step boundary.
_GSM8K_STEP = re.compile(r"<<[^<>]*>>")
# iCoT's multiplication files separate partial products with " + "; each partial product is a step.
_PLUS_SEP = " + "

FORMATS = ("json", "jsonl", "icot")


def infer_format(path: str | os.PathLike) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix == ".jsonl":
        return "jsonl"
    if suffix == ".txt":
        return "icot"
    raise DataError(str(path), "file name", f"cannot tell the format from suffix {suffix!r}; "
                    f"use .json, .jsonl or .txt (iCoT), or pass format= one of {FORMATS}")


def load_records(path: str | os.PathLike, format: str | None = None) -> list[Record]:
    """Read a problem file in any supported format (chosen from the suffix unless given)."""
    fmt = format or infer_format(path)
    readers = {"json": read_json, "jsonl": read_jsonl, "icot": read_icot}
    if fmt not in readers:
        raise UsageError(f"unknown data format {fmt!r}; expected one of {FORMATS}")
    return readers[fmt](path)


def save_records(records: Iterable[Record], path: str | os.PathLike, format: str | None = None) -> None:
    fmt = format or infer_format(path)
    writers = {"json": write_json, "jsonl": write_jsonl, "icot": write_icot}
    if fmt not in writers:
        raise UsageError(f"unknown data format {fmt!r}; expected one of {FORMATS}")
    writers[fmt](records, path)


def _read_text(path: str | os.PathLike) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(str(path), "file", "does not exist") from None
    except OSError as err:  # a folder, or no permission to read
        raise DataError(str(path), "file", f"cannot be read ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise DataError(str(path), f"byte {err.start}", "is not valid UTF-8") from None


def read_json(path: str | os.PathLike) -> list[Record]:
    source = str(path)
    text = _read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(source, f"line {err.lineno} column {err.colno}", f"invalid JSON: {err.msg}") from None
    if not isinstance(data, list):
        raise DataError(source, "top level", f"expected a JSON list of records, got {type(data).__name__}")
    return [Record.from_dict(obj, source, f"record {i}") for i, obj in enumerate(data)]


def read_jsonl(path: str | os.PathLike) -> list[Record]:
    source = str(path)
    records = []
    for lineno, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(source, f"line {lineno} column {err.colno}", f"invalid JSON: {err.msg}") from None
        records.append(Record.from_dict(obj, source, f"line {lineno}"))
    return records


def split_icot_steps(text: str) -> list[str]:
    """Cut iCoT's step text into steps: GSM8k's ``<<...>>`` groups, else ``" + "``-separated terms."""
    text = text.strip()
    if not text:
        return []
    if "<<" in text:
        return _GSM8K_STEP.findall(text)
    return [part.strip() for part in text.split(_PLUS_SEP) if part.strip()]


def parse_icot_line(line: str, source: str = "<memory>", lineno: int = 1) -> Record:
    where = f"line {lineno}"
    if ICOT_QUESTION_SEP not in line:
        raise DataError(source, where, f"no '{ICOT_QUESTION_SEP}' between question and steps", "question")
    question, rest = line.split(ICOT_QUESTION_SEP, 1)
    if ICOT_ANSWER_SEP not in rest:
        raise DataError(source, where, f"no '{ICOT_ANSWER_SEP}' before the answer", "answer")
    steps_text, answer = rest.rsplit(ICOT_ANSWER_SEP, 1)
    if "<<" in steps_text and _GSM8K_STEP.sub("", steps_text).strip():
        stray = _GSM8K_STEP.sub(" ", steps_text).split()
        raise DataError(source, where, f"text outside <<...>> steps: {' '.join(stray)[:60]!r}", "steps")
    obj = {"question": question.strip(), "steps": split_icot_steps(steps_text), "answer": answer.strip()}
    return Record.from_dict(obj, source, where)


def read_icot(path: str | os.PathLike) -> list[Record]:
    source = str(path)
    return [
        parse_icot_line(line, source, lineno)
        for lineno, line in enumerate(_read_text(path).splitlines(), start=1)
        if line.strip()
    ]


def format_icot_line(record: Record) -> str:
    sep = " " if any(s.startswith("<<") for s in record.steps) else _PLUS_SEP
    return f"{record.question}{ICOT_QUESTION_SEP}{sep.join(record.steps)} {ICOT_ANSWER_SEP} {record.answer}"


def check_writable(path: str | os.PathLike, what: str, directory: bool = False) -> None:
    """Fail before any work when ``path`` (a file, or with ``directory`` a folder, to be written) cannot be:
    a file where a folder must be (or the reverse), or no permission to write in the nearest existing folder.
    Nothing is created. The :class:`~latentcot.errors.UsageError` names ``what`` (the flag or config key)."""
    path = Path(path)
    if path.exists() and path.is_dir() != directory:
        kind = "a folder" if path.is_dir() else "a file"
        raise UsageError(f"{what} {path}: cannot be written, it is {kind}")
    probe = path if (directory and path.exists()) else path.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"{what} {path}: cannot be written, {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {path}: cannot be written, no permission to write in {probe}")


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file's or a directory's contents (a directory's: its entries) to the disk."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (IsADirectoryError, PermissionError):  # directories cannot be opened on some systems
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path (same suffix, so writers that go by it still do) for a library to
    write; on success it is flushed to the disk and renamed onto ``path``, as :func:`atomic_write` does."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        fsync_path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        fsync_path(path.parent)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` so that a crash or a power loss leaves the old file or the new one whole.

    The data reaches the disk (fsync) before the rename, and the rename itself (fsync of the directory)
    before returning: a rename alone can survive a power loss that the data did not, leaving an empty file.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling directory to fill; on success it replaces ``target`` whole.

    The previous ``target`` is moved aside before the new one is renamed in and only then deleted, so an
    interruption at any point leaves either the old or the new directory, never a half-written one. Every
    file and the directory itself are flushed to the disk before the rename, and the parent directory
    after it, so a power loss cannot leave a renamed directory of empty files either.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        yield tmp
        tmp.chmod(0o777 & ~_umask())
        for directory, _, files in os.walk(tmp, topdown=False):
            for name in files:
                fsync_path(os.path.join(directory, name))
            fsync_path(directory)
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            if old.exists():
                shutil.rmtree(old)
            target.rename(old)
        tmp.rename(target)
        fsync_path(target.parent)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def write_json(records: Iterable[Record], path: str | os.PathLike) -> None:
    atomic_write(path, json.dumps([r.to_dict() for r in records], ensure_ascii=False) + "\n")


def write_jsonl(records: Iterable[Record], path: str | os.PathLike) -> None:
    atomic_write(path, "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in records))


def write_icot(records: Sequence[Record], path: str | os.PathLike) -> None:
    for i, record in enumerate(records):
        for name in ("question", "answer"):
            if ICOT_QUESTION_SEP in getattr(record, name) or ICOT_ANSWER_SEP in getattr(record, name):
                raise DataError(str(path), f"record {i}", "contains an iCoT separator, cannot write", name)
    atomic_write(path, "".join(format_icot_line(r) + "\n" for r in records))
