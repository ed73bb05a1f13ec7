//! Shared helpers of the scopecast benches: timing statistics printed as p50/p99.
