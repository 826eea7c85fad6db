"""The Textual dashboard (``tessera dash``). Only the ``dash`` command imports this package, and
core never does (tests/test_packaging.py checks both)."""
