"""The one base class for Tailor's domain errors, so callers can catch them together."""


class TailorError(Exception):
    """Base of every error Tailor raises on purpose; the message says what is wrong and what to do."""
