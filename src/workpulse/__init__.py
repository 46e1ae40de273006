"""WorkPulse: pings in, exact usage intervals and reports out."""

__version__ = "0.1.0"
