"""voxgate: an open media bridge between telephone calls and AI voice bots."""

__version__ = "0.1.0"
