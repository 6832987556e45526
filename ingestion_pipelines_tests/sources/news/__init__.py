"""Tests of the news family."""
