"""Peers (DESIGN §11): identity, frames, pairing and transport between nodes; see docs/peers.md."""
