"""Zhongshu (中枢): an open City Brain hub.

Connects a city's department systems read-only, answers governed SQL across them through one
hub protocol, and records every exchange on a tamper-evident ledger.
"""

__version__ = "0.1.0"
