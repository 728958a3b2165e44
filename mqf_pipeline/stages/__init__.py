"""Stages: the lake-walking side of each step of the cycle, all in one shape (see ARCHITECTURE.md)."""
