//! The runnable scenarios of scopecast. Each lives in its own folder under `demos/` with a README, a config and a smoke test in `demos/tests/`.
