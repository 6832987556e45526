"""Tests of the Binance feed."""
