//! The load-time verifier (owned by the verifier work; see docs/verifier.md).
