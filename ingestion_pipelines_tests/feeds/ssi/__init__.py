"""Tests of the SSI iBoard feed."""
