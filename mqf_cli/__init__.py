"""The ``mqf`` command line: drives Dagster so every run it starts is visible in the UI."""
