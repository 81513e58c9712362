"""The base of every error Tailor raises on purpose, below every layer so that all may raise it and a
caller (the CLI) can catch them together."""


class TailorError(Exception):
    """Base of every error Tailor raises on purpose; the message says what is wrong and what to do."""


class ConfigError(TailorError, ValueError):
    """A setting or a configuration file is missing or malformed; the message says which and what is expected."""
