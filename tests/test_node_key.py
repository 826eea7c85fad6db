"""The node's Ed25519 key: created 0600, whole, once; signatures check; a bad key file is one clear error."""

from __future__ import annotations

import os
import stat

import pytest

from tessera.core import node_key
from tessera.core.errors import TesseraError


def test_key_is_created_private_once_and_signs(tmp_path):
    os.umask(0o022)
    store = tmp_path / "tessera.db"
    key = node_key.signing_key(store)
    path = node_key.key_path(store)
    assert path == tmp_path / "tessera.db.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == bytes(key) and len(path.read_bytes()) == 32
    assert [p.name for p in tmp_path.iterdir()] == ["tessera.db.key"]  # no temporary file left
    node_key._loaded.clear()
    again = node_key.signing_key(store)
    assert bytes(again) == bytes(key)
    sig = node_key.sign(key, b"head")
    assert node_key.signature_valid(node_key.public_key_hex(key), b"head", sig)
    assert not node_key.signature_valid(node_key.public_key_hex(key), b"other head", sig)
    assert bytes(key).hex() not in node_key.public_key_hex(key)


def test_a_damaged_key_file_is_one_error_that_does_not_show_it(tmp_path):
    store = tmp_path / "s.db"
    node_key.key_path(store).write_bytes(b"secret-ish-bytes")
    with pytest.raises(TesseraError, match=r"is not a key \(16 bytes, not 32\)") as info:
        node_key.signing_key(store)
    assert "secret-ish" not in str(info.value)
    assert node_key.signing_key(tmp_path / "none.db", create=False) is None


def test_the_fast_signer_makes_the_same_signatures(tmp_path):
    key = node_key.signing_key(tmp_path / "f.db")
    sign = node_key.signer(key)
    for message in (b"", b"head", bytes(range(256)) * 4):
        assert sign(message) == node_key.sign(key, message)
        assert node_key.signature_valid(node_key.public_key_hex(key), message, sign(message))
