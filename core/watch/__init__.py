"""Live data: watch caches shared by everything in a process, and queries kept current over them."""
