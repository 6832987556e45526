"""OKX public websocket feeds (protocol only for now)."""
