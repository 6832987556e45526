"""Tests of the VNDIRECT family."""
