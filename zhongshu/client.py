"""``zhongshu.client.Hub``: the protocol client scenarios and cockpits use (and nothing else)."""

from zhongshu.protocol.client import Hub, HubError

__all__ = ["Hub", "HubError"]
