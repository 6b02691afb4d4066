"""The Python client of the hub protocol: :class:`Hub` (a connection to one hub, as one
member) and :class:`HubError`; :mod:`zhongshu.client.signing` signs requests (RFC 9421).

It stands alone: of the hub's code it imports only :mod:`zhongshu.errors`, so scenarios,
cockpits, members' tools and peer hubs use it after ``pip install zhongshu`` (no extras),
and the hub's own parts may import it without making a cycle.

>>> hub = Hub("http://127.0.0.1:8400", token)  # doctest: +SKIP
>>> sql = "SELECT count(*) FROM traffic.passages"
>>> hub.query(sql, purpose="traffic-management")  # doctest: +SKIP
"""

from zhongshu.client.hub import ON_BEHALF_OF, Hub, HubError

__all__ = ["ON_BEHALF_OF", "Hub", "HubError"]
