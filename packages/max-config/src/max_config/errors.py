"""The one error type every user-facing validation raises."""


class ConfigError(ValueError):
    """One line naming the flag or file and what to change; the CLI prints it and exits 2.

    `key` is the flat setting name (e.g. "kv_cache_page_size") when the error is about one setting,
    so a caller can say where that value came from.
    """

    def __init__(self, message: str, key: str | None = None):
        super().__init__(" ".join(str(message).split()))
        self.key = key
