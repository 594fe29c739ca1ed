"""tokenfactory: a discrete-event simulator of AI data centres as token factories."""

__version__ = "0.1.0"
