"""Probes: fixed procedures that try to bring an erased concept back. Each returns counts, never verdicts.

:mod:`memora_bench.probes.registry` names them and types their parameters."""
