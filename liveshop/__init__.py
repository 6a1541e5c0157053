"""liveshop: an open real-time engine for live commerce on Ray."""

__version__ = "0.1.0"
