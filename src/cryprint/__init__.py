"""cryprint: tell whether two recordings of infant cries come from the same baby."""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # The API loads torch and SpeechBrain: only when it is asked for, so `cryprint --version`
    # and the CLI's argument checks stay fast.
    if name == "CryPrint":
        from cryprint.api import CryPrint

        return CryPrint
    if name == "EmbeddingOptions":
        from cryprint.options import EmbeddingOptions

        return EmbeddingOptions
    raise AttributeError(f"module 'cryprint' has no attribute {name!r}")


__all__ = ["CryPrint", "EmbeddingOptions", "__version__"]
