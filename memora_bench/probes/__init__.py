"""Probes: fixed procedures that try to bring an erased concept back. Each returns counts, never verdicts."""
