"""cryprint: tell whether two recordings of infant cries come from the same baby."""

__version__ = "0.1.0"
