"""Run by tests/protocol/test_ngsild.py with the Python of ngsildclient's own virtualenv
(``scripts/ngsildclient-venv`` makes it): the unchanged client queries, counts, gets one
entity and lists types on a hub, and prints what it got as one JSON object. It imports
nothing of the hub (that virtualenv does not have it).

Usage: python ngsildclient_probe.py HOST PORT TOKEN TYPE
"""

import json
import sys

from ngsildclient import Client
from requests.auth import AuthBase


class Bearer(AuthBase):
    def __init__(self, token):
        self.token = token

    def __call__(self, r):
        r.headers["Authorization"] = f"Bearer {self.token}"
        return r


def main():
    host, port, token, etype = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    client = Client(hostname=host, port=port, custom_auth=Bearer(token), verbose=False)
    try:
        entities = client.query(type=etype, limit=1000)
        count = client.count(type=etype)
        first = client.get(entities[0].id)
        types = client.types.list()
        out = {"ids": [e.id for e in entities], "count": count,
               "first": {"id": first.id, "type": first.type,
                         "totalSpotNumber": first["totalSpotNumber"].value},
               "types": types}
        print(json.dumps(out, default=str))
    finally:
        client.close()


if __name__ == "__main__":
    main()
