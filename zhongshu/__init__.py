"""Zhongshu (中枢): an open City Brain hub.

Connects a city's department systems read-only, answers governed SQL across them through one
hub protocol, and records every exchange on a tamper-evident ledger.

``pip install zhongshu`` gives the protocol's client (:mod:`zhongshu.client`) and the
``zhongshu`` command; the hub itself is ``zhongshu[hub]``, its drivers ``[postgres]``,
``[mysql]`` and ``[streams]``, the traffic simulation ``[traffic]``, everything ``[all]``.
"""

__version__ = "0.1.0"
