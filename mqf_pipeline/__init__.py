"""MQF pipeline: the domain library of a systematic equity fund.

Everything in this package except ``definitions.py`` is plain Python over polars frames and
numpy arrays, usable from a notebook without Dagster.
"""

__version__ = "0.1.0"
