"""``[federation]`` in city.toml: a mistake stops the hub with the file, the line and the fix."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from zhongshu.config import load_city
from zhongshu.errors import ConfigError

KEY = base64.b64encode(bytes(range(32))).decode()


def city(tmp: Path, federation: str, members: dict[str, str]) -> Path:
    (tmp / "members").mkdir(parents=True)
    (tmp / "city.toml").write_text(f'[city]\nname = "c"\n\n{federation}')
    for name, text in members.items():
        (tmp / "members" / f"{name}.toml").write_text(text)
    return tmp


PEER = f'''[federation]
member = "hub-city"

[[federation.peers]]
name = "hub-xihu"
url = "http://127.0.0.1:8401"
public_key = "{KEY}"
'''
HUB = '[member]\nname = "hub-xihu"\nkind = "hub"\n'


def test_a_good_federation_loads(tmp_path: Path) -> None:
    c = load_city(city(tmp_path, PEER, {"hub-xihu": HUB}))
    assert c.federation is not None
    [peer] = c.federation.peers
    assert peer.namespace == "xihu" and peer.owns("xihu_grid.events")
    assert not peer.owns("xihugrid.events") and not peer.owns("traffic.passages")


@pytest.mark.parametrize("federation, members, says", [
    (PEER, {}, "declare it as a member of kind `hub`"),
    (PEER, {"hub-xihu": '[member]\nname = "hub-xihu"\nkind = "department"\n'},
     "member of kind `hub`"),
    (PEER.replace(KEY, "not-base64!"), {"hub-xihu": HUB}, "base64"),
    (PEER.replace(KEY, base64.b64encode(b"short").decode()), {"hub-xihu": HUB}, "32 bytes"),
    (PEER.replace("http://127.0.0.1:8401", "file:///etc/passwd"), {"hub-xihu": HUB}, "url"),
    (PEER.replace('member = "hub-city"', 'member = "hub-xihu"'), {"hub-xihu": HUB},
     "own name"),
    (PEER + '\n[[federation.unions]]\nname = "grid.events"\nowner = "hub-xihu"\n'
     'parts = ["traffic.passages"]\n', {"hub-xihu": HUB}, "each part is a dataset of a peer"),
    (PEER + '\n[[federation.unions]]\nname = "xihu_all.events"\nowner = "hub-xihu"\n'
     'parts = ["xihu_grid.events"]\n', {"hub-xihu": HUB}, "namespace"),
    (PEER + '\n[[federation.unions]]\nname = "grid.events"\nowner = "nobody"\n'
     'parts = ["xihu_grid.events"]\n', {"hub-xihu": HUB}, "owner `nobody`"),
])
def test_a_mistake_is_refused_clearly(tmp_path: Path, federation: str,
                                      members: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_city(city(tmp_path, federation, members))
    assert says in str(e.value)


def test_no_local_dataset_in_a_peer_namespace(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    dept = '''[member]
name = "grid"
kind = "department"

[[sources]]
name = "grid-db"
kind = "sqlite"
path = "data/x.db"

[[datasets]]
name = "xihu_grid.events"
source = "grid-db"
table = "events"
columns = [{ name = "a", type = "BIGINT" }]
'''
    with pytest.raises(ConfigError, match="namespace of peer `hub-xihu`"):
        load_city(city(tmp_path, PEER, {"hub-xihu": HUB, "grid": dept}))


def test_the_peer_grants_its_datasets_onward_but_no_one_else(tmp_path: Path) -> None:
    grant = '''
[[grants]]
consumer = "{consumer}"
datasets = ["{dataset}"]
purposes = ["p"]
'''
    consumer = '[member]\nname = "app"\nkind = "consumer"\n'
    ok = HUB + grant.format(consumer="app", dataset="xihu_grid.events")
    assert load_city(city(tmp_path / "a", PEER, {"hub-xihu": ok, "app": consumer}))
    other = HUB + grant.format(consumer="app", dataset="binjiang_grid.events")
    with pytest.raises(ConfigError, match="not a dataset of `hub-xihu`"):
        load_city(city(tmp_path / "b", PEER, {"hub-xihu": other, "app": consumer}))
    stolen = consumer.replace("consumer", "department") + grant.format(
        consumer="hub-xihu", dataset="xihu_grid.events")
    with pytest.raises(ConfigError, match="not a dataset of `app`"):
        load_city(city(tmp_path / "c", PEER, {"hub-xihu": HUB, "app": stolen}))


def test_a_city_peer_keeps_its_names_and_yields_to_local_and_district_ones(tmp_path: Path
                                                                          ) -> None:
    fed = PEER + f'''
[[federation.peers]]
name = "hub-city2"
url = "http://127.0.0.1:8400"
public_key = "{KEY}"
role = "city"
'''
    hub2 = '[member]\nname = "hub-city2"\nkind = "hub"\n'
    c = load_city(city(tmp_path, fed, {"hub-xihu": HUB, "hub-city2": hub2}))
    assert c.federation is not None
    owner = c.federation.owner_of
    assert owner("traffic.passages").name == "hub-city2"  # type: ignore[union-attr]
    assert owner("xihu_grid.events").name == "hub-xihu"  # type: ignore[union-attr]
