"""The definition store: the console reads and writes the marketers' YAML files, and loses nothing.

Invariants:
- Nothing invalid is written. A change set is applied to a temporary copy of the folder first and
  checked there with the same loader and lint as `campaigns validate` (`checks.Checker`); only a
  folder that passes replaces the real files, each atomically (a temporary file in the same
  folder, then `os.replace`), so a reader never sees half a file.
- No lost write. Every edit carries the version (sha256 of the bytes) of each file it read; if a
  file changed since, the save is refused with `Conflict`, naming the file and carrying its
  current content. The check and the write happen under one lock (a thread lock and `flock` on
  the folder), so two saves from the same version cannot both pass, across processes too.
- Every write is kept in the history (`history.History`), with who, when and a unified diff.

Files the console does not touch are never rewritten, so their comments stay.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from campaign_orchestrator.console.checks import Checker, FolderCheck
from campaign_orchestrator.console.history import ChangeRecord, History, unified_diff
from campaign_orchestrator.errors import CampaignError, InvalidInput

ABSENT = "absent"  # the version of a file that does not exist


def version_of(data: bytes | None) -> str:
    return ABSENT if data is None else hashlib.sha256(data).hexdigest()


class StoreError(CampaignError, InvalidInput):
    """A change the store refuses; the message says why."""


class Conflict(StoreError):
    """The file changed since the editor read it: nothing was written."""

    def __init__(self, current: Stored) -> None:
        self.current = current
        super().__init__(
            f"{current.file} was changed by someone else since you opened it; nothing was saved. "
            "Its current content is shown: apply your change to it again."
        )


class Invalid(StoreError):
    """The change would make the folder fail `campaigns validate`: nothing was written."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s):\n" + "\n".join(problems))


@dataclass(frozen=True)
class Stored:
    file: str  # relative to the marketing folder, with '/'
    text: str | None  # None: the file does not exist
    version: str

    @property
    def exists(self) -> bool:
        return self.text is not None


@dataclass(frozen=True)
class Change:
    file: str
    text: str | None  # None removes the file
    expected_version: str  # what the editor read (ABSENT for a new file)


def safe_relative(file: str) -> str:
    """A YAML file inside the folder, spelt with '/'; anything else is refused."""
    path = PurePosixPath(file)
    if path.is_absolute() or ".." in path.parts or path.suffix not in {".yaml", ".yml"} or not path.parts:
        raise StoreError(f"{file!r} is not a definition file inside the marketing folder")
    return str(path)


class DefinitionStore:
    def __init__(self, config_dir: Path, checker: Checker, history: History | None = None) -> None:
        self.config_dir = config_dir
        self.checker = checker
        self.history = history
        self._lock = threading.Lock()

    def path(self, file: str) -> Path:
        return self.config_dir / safe_relative(file)

    def read(self, file: str) -> Stored:
        path = self.path(file)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return Stored(safe_relative(file), None, ABSENT)
        return Stored(safe_relative(file), data.decode("utf-8", errors="replace"), version_of(data))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One writer at a time, in this process (thread lock) and across processes (flock)."""
        with self._lock:
            fd = os.open(self.config_dir, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing releases the flock

    def save(self, changes: list[Change], by: str, action: str, kind: str, definition_id: str) -> list[Stored]:
        """Check versions, validate the result on a copy, then write each file atomically and record it."""
        with self.locked():
            before = {c.file: self.read(c.file) for c in changes}
            for change in changes:
                if before[change.file].version != change.expected_version:
                    raise Conflict(before[change.file])
            self.validate(changes)
            after = [self._write(c) for c in changes]
        if self.history is not None:
            for old, new in zip((before[c.file] for c in changes), after, strict=True):
                record = ChangeRecord(
                    changed_by=by,
                    action=action,
                    kind=kind,
                    definition_id=definition_id,
                    file=new.file,
                    version_before=None if old.version == ABSENT else old.version,
                    version_after=None if new.version == ABSENT else new.version,
                    diff=unified_diff(new.file, old.text, new.text),
                )
                self.history.record(record)
        return after

    def validate(self, changes: list[Change]) -> None:
        """The folder as it would be after `changes`, checked like `campaigns validate`; raise Invalid."""
        check = self.check_changes(changes)
        if not check.ok:
            raise Invalid(check.problems)

    def check_changes(self, changes: list[Change]) -> FolderCheck:
        """`campaigns validate` on a copy of the folder with `changes` applied (nothing is written);
        its problems name the real folder, so each message is the one `campaigns validate` gives there."""
        with tempfile.TemporaryDirectory(prefix="console-check-") as tmp:
            copy = Path(tmp) / self.config_dir.name
            shutil.copytree(self.config_dir, copy)
            for change in changes:
                target = copy / safe_relative(change.file)
                if change.text is None:
                    target.unlink(missing_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(change.text, encoding="utf-8")
            check = self.checker.check(copy)
        problems = [p.replace(str(copy), str(self.config_dir), 1) for p in check.problems]
        return FolderCheck(check.definitions, problems, check.stage)

    def _write(self, change: Change) -> Stored:
        path = self.path(change.file)
        if change.text is None:
            path.unlink(missing_ok=True)
            return Stored(safe_relative(change.file), None, ABSENT)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = change.text.encode("utf-8")
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            os.fchmod(fd, mode)  # mkstemp's 0600 would hide the file from the scheduler's user
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Stored(safe_relative(change.file), change.text, version_of(data))
