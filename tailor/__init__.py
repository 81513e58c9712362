"""Tailor: a real-time personalization engine on Kafka, PyFlink and Redis."""

__version__ = "0.1.0"
