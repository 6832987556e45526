"""Tests of the staged crypto-collector payloads (issue 21)."""
