"""The generic replay servers (HTTP with route registration, websocket) the family folders plug into."""
