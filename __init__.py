"""diplotag: tag defence-diplomacy statements and their stance in news text."""
__version__ = "0.1.0"
