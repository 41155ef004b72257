"""synthia_rt: the real-time backend of Synthia Style."""

__version__ = "0.1.0"
