"""Probes: fixed procedures that try to bring an erased concept back. Each returns counts, never verdicts."""

from __future__ import annotations


def check_param_names(params_cls, raw: dict, probe: str) -> None:
    """Suite parameters are strict: a key the probe's parameter dataclass does not have is an error."""
    from dataclasses import fields

    names = {f.name for f in fields(params_cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ValueError(f"unknown {probe} parameter(s) {unknown}; known: {sorted(names)}")
