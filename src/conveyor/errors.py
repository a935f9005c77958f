"""One exception hierarchy for everything conveyor reports to a user.

Every error carries the exit code the CLI returns and, where there is one, a hint
that tells the user how to fix it. The CLI maps errors to exit codes in exactly
one place (:func:`conveyor.cli.main`), so library callers see ordinary exceptions
and shell callers see one clear line.

Exit codes follow BSD ``sysexits.h`` where one fits, so scripts can tell a bad
argument from a busy workspace from a damaged cache.
"""

from __future__ import annotations

import os


class ConveyorError(Exception):
    """Root of every error conveyor raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def format_message(self) -> str:
        """The one line shown to a user: what was wrong, then how to fix it."""
        if self.hint:
            return f"{self.message}; {self.hint}"
        return self.message


class UsageError(ConveyorError, ValueError):
    """An argument or option the user gave cannot be used as given."""

    exit_code = 2


class PathError(UsageError):
    """A path is outside the workspace, escapes it, or is of the wrong kind."""


class WorkspaceError(ConveyorError):
    """There is no usable workspace where the command ran."""

    exit_code = 2


class NotAGitRepositoryError(WorkspaceError):
    """Conveyor versions data next to git and needs a git repository."""


class WorkspaceLockedError(ConveyorError):
    """Another conveyor process holds the workspace lock."""

    exit_code = 75  # EX_TEMPFAIL: try again later


class MissingFileError(ConveyorError, FileNotFoundError):
    """A file the user named does not exist or cannot be read."""

    exit_code = 66  # EX_NOINPUT


class CorruptFileError(ConveyorError):
    """A file conveyor wrote (pointer, manifest, config) is damaged or hand-edited badly."""

    exit_code = 65  # EX_DATAERR


class ObjectMissingError(ConveyorError):
    """An object a pointer refers to is not in the cache."""

    exit_code = 66


class CorruptObjectError(ConveyorError):
    """A cache object's content does not match its hash."""

    exit_code = 65


class VerificationError(ConveyorError):
    """``verify`` found objects or workspace files that do not match their hashes."""

    exit_code = 1


class UncommittedChangesError(ConveyorError):
    """An operation would discard data that exists nowhere but in the workspace."""

    exit_code = 1


class StorageError(ConveyorError, OSError):
    """The disk refused a write: full, read-only or out of quota."""

    exit_code = 74  # EX_IOERR


def storage_error(exc: OSError, path: str | os.PathLike[str], action: str) -> StorageError:
    """Turn a low-level OSError into a message that names the path and the fix."""
    import errno

    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    hints = {
        errno.ENOSPC: "free some disk space and run the command again; nothing was changed",
        errno.EDQUOT: "free some quota and run the command again; nothing was changed",
        errno.EROFS: "the filesystem is read-only; point the cache somewhere writable",
        errno.EACCES: "check the permissions of the file and its folder",
        errno.EPERM: "check the permissions of the file and its folder",
    }
    hint = hints.get(exc.errno or 0, "fix the cause and run the command again")
    return StorageError(f"{path}: cannot {action}: {reason}", hint=hint)


class RemoteError(ConveyorError):
    """A remote is unknown, misconfigured, unreachable or refused a request."""

    exit_code = 74  # EX_IOERR: the other side failed; fix the cause and run it again


class CorruptRemoteObjectError(ConveyorError):
    """An object on a remote does not hash to its name: tampered with or damaged."""

    exit_code = 65  # EX_DATAERR


class DataError(ConveyorError):
    """A data set cannot be checked as given: unreadable, or without a column it needs."""

    exit_code = 65  # EX_DATAERR


class ModelError(ConveyorError):
    """A model cannot be loaded, or its predict failed."""

    exit_code = 65


class EnvironmentMismatchError(ModelError):
    """A model would be loaded under package versions known to break loading it."""

    exit_code = 78  # EX_CONFIG


class GateFailedError(ConveyorError):
    """A check suite's condition failed, or a check could not run: the gate is closed."""

    exit_code = 1
