"""SSI iBoard pushstream (`ssi_iboard`): `feed.py` speaks the protocol, `replay.py` replays the
recorded session (`data/`)."""
