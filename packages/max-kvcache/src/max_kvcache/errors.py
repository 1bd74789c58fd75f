"""The user-facing configuration error: `max_config.ConfigError` where that package defines it."""

try:
    from max_config import ConfigError
except ImportError:  # max_config not yet providing it; same contract: one line naming the flag or file

    class ConfigError(ValueError):  # type: ignore[no-redef]
        """One line naming the flag or file and what to change."""


__all__ = ["ConfigError"]
