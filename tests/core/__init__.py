"""Tests of the pure core: tables, rooms, diagrams (no I/O, no network)."""
