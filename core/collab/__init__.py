"""Live collaboration on shared notebooks (issue 15): sync, presence, owner-run panes."""
