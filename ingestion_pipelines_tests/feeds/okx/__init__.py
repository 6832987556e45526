"""Tests of the OKX trade protocol."""
