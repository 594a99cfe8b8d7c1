"""Profile distribution: signed, versioned remote rulebooks (TUF) with the bundled one as fallback, and submissions.

Data flow: a maintainer's rulebook directory -> `publisher` (a TUF repository of static files) -> any static HTTP
host -> `client` (python-tuf's ngclient verifies root, timestamp, snapshot, targets and the target's hashes) ->
`activate` (engine lint with 0 errors and the flag allowlist) -> `store` (immutable version directories, one
atomically replaced state file: pin, rollback) -> `engine.config.rulebook_roots` (the active remote rulebook
replaces the bundled one; the user rulebook stays on top). `policy` decides when to refresh (interval + jitter,
exponential backoff 5 min -> 4 h), `refresher` starts a refresh in the background, `remote_status` says
fresh / stale / offline-using-cache / fallback-to-bundled and why. `submission` + `anonymise` turn a Lemonade
bench result into a contribution file (a superset of Lemonade's `bench --submit` body). docs/profiles.md.
"""
