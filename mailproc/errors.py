"""The few exception types mailproc raises on purpose.

The split follows what an operator must do about it: a `ConfigError` means
"fix your files" and stops the program at start-up; a `TransientError` means
"try again later"; anything else that escapes a
message's processing marks that one message `failed` and the batch goes on.
"""


class MailprocError(Exception):
    """Base class for errors mailproc raises deliberately."""


class ConfigError(MailprocError):
    """Configuration, rules or templates are wrong; names the file and key/line."""

    def __init__(self, message: str, *, file: str | None = None, where: str | None = None):
        self.file = file
        self.where = where
        prefix = ":".join(p for p in (file, where) if p)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class TransientError(MailprocError):
    """A server (e.g. the database) is unreachable: a command exits 1 and systemd
    restarts it; nothing was lost, the work waits for the next round."""


class SchemaError(MailprocError):
    """The database was written by a newer mailproc, or cannot be upgraded."""
