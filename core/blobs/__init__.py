"""Blobs (issue 15): content-addressed files moved between peers in verified chunks (docs/collab.md "Blobs")."""
