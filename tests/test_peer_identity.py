"""This node's identity among peers (core/peers/identity.py, ``tessera peer init|id``, ``tessera
info``): the node id is the node key's public half in iroh's own text, the name is stored in the
store, and the secret key is never shown anywhere (real ``tessera`` processes)."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tessera.core.errors import UsageError
from tessera.core.peers import identity

# What iroh 1.2.0 prints for the endpoint id whose key bytes are 0, 1, ..., 31 (EndpointId.from_bytes
# then str() and fmt_short(); its from_string also takes the base32 form). Recorded from the PyPI
# wheel, so this test holds where iroh is not installed; the test below checks against iroh itself.
IROH_KEY_BYTES = bytes(range(32))
IROH_TEXT = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
IROH_SHORT = "0001020304"
IROH_BASE32 = "aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dypq"


def tessera(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tessera.cli.main", *args], capture_output=True, text=True, timeout=120)


def data_home() -> Path:
    return Path(os.environ["TESSERA_HOME"])


def key_file() -> Path:
    return data_home() / "tessera.db.key"


def test_the_node_id_is_written_as_iroh_writes_an_endpoint_id():
    assert identity.node_id_of(IROH_KEY_BYTES) == IROH_TEXT
    assert identity.short_id(IROH_TEXT) == IROH_SHORT
    assert identity.parse_node_id(IROH_BASE32) == identity.parse_node_id(IROH_TEXT.upper()) == IROH_TEXT


def test_the_node_id_equals_irohs_endpoint_id_of_the_same_key():
    iroh = pytest.importorskip("iroh")
    from nacl.signing import SigningKey

    public = bytes(SigningKey.generate().verify_key)
    endpoint_id = iroh.EndpointId.from_bytes(public)
    assert identity.node_id_of(public) == str(endpoint_id)
    assert identity.short_id(identity.node_id_of(public)) == endpoint_id.fmt_short()


@pytest.mark.parametrize("text", ["", "xyz", "a" * 63, "g" * 64, "a" * 65, IROH_BASE32[:-1] + "1"])
def test_a_malformed_node_id_is_a_usage_error(text):
    with pytest.raises(UsageError, match="is not a node id"):
        identity.parse_node_id(text)


def test_peer_id_prints_the_public_half_of_the_node_key():
    from nacl.signing import SigningKey

    proc = tessera("peer", "id")
    assert proc.returncode == 0 and proc.stderr == ""
    public = bytes(SigningKey(key_file().read_bytes()).verify_key).hex()
    assert proc.stdout == public + "\n"  # in a pipe: the full id alone, for scripts
    assert tessera("peer", "id", "--short").stdout == public[:10] + "\n"
    shown = json.loads(tessera("peer", "id", "--json").stdout)
    assert shown == {"node_id": public, "short_id": public[:10], "name": identity.default_name()}


def test_peer_init_sets_the_name_keeps_it_and_info_shows_the_identity():
    proc = tessera("peer", "init")
    assert proc.returncode == 0 and f"name      {identity.default_name()}" in proc.stdout
    assert tessera("peer", "init", "--name", "alice@laptop").returncode == 0
    proc = tessera("peer", "init")  # no --name: the name set before is kept
    assert "name      alice@laptop" in proc.stdout
    me = json.loads(tessera("peer", "id", "--json").stdout)
    assert me["name"] == "alice@laptop" and f"node id   {me['node_id']}" in proc.stdout
    node = json.loads(tessera("info").stdout)["node"]
    assert {k: node[k] for k in ("node_id", "short_id", "name")} == me


def test_info_on_a_new_data_home_makes_no_key_and_no_store():
    node = json.loads(tessera("info").stdout)["node"]
    assert node["node_id"] is None and node["name"] == identity.default_name()
    assert not key_file().exists() and not (data_home() / "tessera.db").exists()


@pytest.mark.parametrize("name, why", [("", "1 to 64 characters"), ("x" * 65, "1 to 64 characters"),
                                       ("evil\x1b[2Jname", "control characters"), ("two\nlines", "control characters")])
def test_a_bad_name_is_one_line_exit_2_and_nothing_is_written(name, why):
    proc = tessera("peer", "init", "--name", name)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and why in proc.stderr and "\x1b" not in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not key_file().exists() and not (data_home() / "tessera.db").exists()


def test_the_key_and_the_store_are_private():
    assert tessera("peer", "init", "--name", "bob").returncode == 0
    for path in (key_file(), data_home() / "tessera.db"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_no_peer_command_shows_the_secret_key_anywhere(isolated_home):
    from nacl.bindings import crypto_sign_seed_keypair

    runs = [tessera("peer", "init", "--name", "carol"), tessera("peer", "init"), tessera("peer", "id"),
            tessera("peer", "id", "--short"), tessera("peer", "id", "--json"), tessera("info"),
            tessera("peer", "--help"), tessera("peer", "init", "--name", "\x07"), tessera("peer", "nope")]
    seed = key_file().read_bytes()
    secret = crypto_sign_seed_keypair(seed)[1]  # libsodium's 64-byte secret key: seed + public key
    forms = set()
    for raw in (seed, secret[:32], secret):
        forms |= {raw.hex(), raw.hex().upper(), base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode(),
                  base64.b64encode(raw).decode().rstrip("="), base64.b32encode(raw).decode().rstrip("=").lower()}
    printed = "".join(p.stdout + p.stderr for p in runs)
    assert all(p.returncode in (0, 2) for p in runs)
    assert not [f for f in forms if f in printed]
    # nor in any other file the commands left: the store, caches, config, logs
    for path in isolated_home.rglob("*"):
        if path.is_file() and path != key_file():
            content = path.read_bytes()
            assert seed not in content and not [f for f in forms if f.encode() in content], path


def test_a_damaged_key_is_one_line_exit_1_and_is_left_as_it_was():
    data_home().mkdir(parents=True)
    key_file().write_bytes(b"not a key")
    key_file().chmod(0o600)
    for args in (("peer", "id"), ("peer", "init", "--name", "x")):
        proc = tessera(*args)
        assert proc.returncode == 1 and proc.stdout == "" and proc.stderr.count("\n") == 1
        assert "is not a key" in proc.stderr and "Traceback" not in proc.stderr
    assert key_file().read_bytes() == b"not a key"
    assert "is not a key" in json.loads(tessera("info").stdout)["node"]["error"]


def test_on_a_terminal_peer_id_shows_the_id_the_short_id_and_the_name():
    import pty

    controller, terminal = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "tessera.cli.main", "peer", "id"], stdout=terminal,
                              stderr=subprocess.PIPE, timeout=120)
        os.close(terminal)
        terminal = None
        shown = b""
        while True:
            try:
                piece = os.read(controller, 4096)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not piece:
                break
            shown += piece
    finally:
        if terminal is not None:
            os.close(terminal)
        os.close(controller)
    me = json.loads(tessera("peer", "id", "--json").stdout)
    assert proc.returncode == 0
    assert shown.decode().splitlines() == [f"node id   {me['node_id']}", f"short id  {me['short_id']}",
                                           f"name      {me['name']}"]
