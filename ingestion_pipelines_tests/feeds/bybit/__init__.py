"""Tests of the Bybit trade protocol."""
