"""User-facing errors: each names the file and key at fault; the CLI exits with code 2."""

import difflib


class ConfigError(Exception):
    """Bad input from a manifest, the command line or the data root."""

    def __init__(self, message: str, file: str | None = None, key: str | None = None):
        self.file, self.key, self.message = file, key, message
        where = ": ".join(str(part) for part in (file, key) if part)
        super().__init__(f"{where}: {message}" if where else message)

    def within(self, file: str | None, prefix: str = "") -> "ConfigError":
        """The same error placed in ``file``, its key under ``prefix`` (e.g. ``rows[1].grid.``)."""
        return ConfigError(self.message, file=self.file or file, key=f"{prefix}{self.key or ''}" or None)


def closest(name: str, known) -> str:
    """'known: a, b, c; did you mean 'b'?' for an unknown name."""
    match = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.4)
    suggestion = f"; did you mean {match[0]!r}?" if match else ""
    return f"known: {', '.join(sorted(map(str, known)))}{suggestion}"
