"""Attacks on a running server: fuzzing, known attacks, limits (issue 11, docs/security.md)."""
