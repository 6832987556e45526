"""Tests of the fmarket family."""
