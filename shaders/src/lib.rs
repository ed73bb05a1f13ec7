//! scopecast-shaders: every WGSL shader of scopecast, embedded into the binary
//! at build time (`include_str!`) so that no shader is ever read from disk at
//! run time, and validated by naga in a CPU-only test so a broken shader fails
//! `cargo test` on machines without a GPU.
//!
//! It holds shader text and nothing else. It must never depend on wgpu, on the
//! engine, on transport or on any IO: the compositor (in `scopecast-engine`)
//! owns pipelines and bind groups and only borrows the source text from here.
//!
//! No shader exists yet: the GPU compositor arrives with its own issue.
