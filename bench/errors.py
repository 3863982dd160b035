"""User-facing errors: each names the file and key at fault; the CLI exits with code 2."""


class ConfigError(Exception):
    """Bad input from a manifest, the command line or the data root."""

    def __init__(self, message: str, file: str | None = None, key: str | None = None):
        self.file, self.key, self.message = file, key, message
        where = ": ".join(str(part) for part in (file, key) if part)
        super().__init__(f"{where}: {message}" if where else message)
