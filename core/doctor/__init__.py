"""tessera doctor: checks of the data home, the store and what this node talks to, each a small
function returning CheckResults (core/doctor/check_result.py), run by core/doctor/all_checks.py;
the CLI (cli/doctor.py) only renders them (docs/doctor.md)."""
