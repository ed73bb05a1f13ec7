//! Proof that this CPU runs AVX2, the one way to reach the crate's AVX2
//! kernels (`compositor/cpu_frame/avx2.rs`, `source/synthetic/avx2.rs`).
//!
//! Each kernel is a method of [`Avx2`] in its own module and computes the
//! same integers as the scalar code beside it, which finishes each row and
//! runs everything where there is no token (other CPUs, other
//! architectures). Tests compare the two byte for byte.

/// Held only where the CPU reports AVX2 (every x86-64 since Haswell, 2013).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2(pub(crate) Proof);

/// What [`Avx2`] holds: a unit on x86-64 (made only by [`Avx2::detect`]).
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Proof(());

/// Off x86-64 there are no kernels: the token cannot exist, and a kernel's
/// body there is `match self.0 {}`.
#[cfg(not(target_arch = "x86_64"))]
#[derive(Debug, Clone, Copy)]
pub(crate) enum Proof {}

impl Avx2 {
    /// The token, where this CPU has AVX2.
    pub(crate) fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return Some(Self(Proof(())));
        }
        None
    }

    /// The token for a test that compares a kernel with its scalar code
    /// (`what`); a CPU without AVX2 fails the test with the reason, never
    /// skips it.
    #[cfg(test)]
    pub(crate) fn required_by_test(what: &str) -> Self {
        Self::detect().unwrap_or_else(|| {
            panic!(
                "this test checks the AVX2 kernels of {what} against the scalar code: run it on a CPU with AVX2 \
                 (x86-64 since 2013)"
            )
        })
    }
}
