"""Sites that need a browser: Playwright on the system Chromium (`pool`, `process`, `reaper`),
challenge clearance handed to curl_cffi (`clearance`), HTML to records (`html_records`), failure
evidence (`artifacts`), and the Dagster resource (`resource`)."""
