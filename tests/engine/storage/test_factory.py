"""Choosing the storage backend: refusals never echo a credential carried by the root."""

from __future__ import annotations

import pytest

from engine.config import Config
from engine.errors import ConfigError
from engine.storage.factory import open_storage, shown_root
from engine.storage.local import LocalStorage

SAS = "se=2030-01-01&sp=rwl&sv=2022-11-02&sr=c&sig=c2lnbmF0dXJlU2VjcmV0"


@pytest.mark.parametrize("root,words", [
    (f"https://acct.blob.core.windows.net/market?{SAS}",
     "unsupported storage root 'https://acct.blob.core.windows.net/market?…': use a local folder"),
    (f"az://market/warehouse?{SAS}", "storage root az://market/warehouse?… is in Azure but the config has no [azure]"),
    ("ftp://etl:pa55word@files.example/wh", "unsupported storage root 'ftp://etl:***@files.example/wh'"),
])
def test_a_refused_root_is_shown_without_its_sas_token_or_password(root, words):
    with pytest.raises(ConfigError) as info:
        open_storage(root, Config())
    message = str(info.value)
    assert words in message and "sig=" not in message and "c2lnbmF0" not in message and "pa55" not in message


def test_a_local_root_is_opened_and_shown_as_it_is(tmp_path):
    assert isinstance(open_storage(str(tmp_path / "wh"), Config()), LocalStorage)
    assert shown_root("/data/wh") == "/data/wh" and shown_root("az://c/p") == "az://c/p"
