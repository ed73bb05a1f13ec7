//! A bound on glibc's malloc arenas, set once before the station starts a thread.
//!
//! glibc gives a thread that allocates under contention an arena of its own, up
//! to eight per core, and an arena's freed pages mostly stay with the process.
//! Each time the source pipeline restarts (a camera unplugged and back), its new
//! GStreamer streaming threads took fresh arenas: the 30-minute soak measured
//! +16 MB at the first restart and +7 MB at the next with the default arenas
//! (+4.9 MB/min over the run), against +0.3 MB per restart with two arenas.
//! `MALLOC_ARENA_MAX` or `GLIBC_TUNABLES=glibc.malloc.arena_max=N` in the
//! environment still win (glibc reads them at start; this leaves them alone).

/// Arenas the station allows itself when the environment does not say
/// (measured in the soak; the same cap as `MALLOC_ARENA_MAX=2`).
pub const STATION_MALLOC_ARENAS: i32 = 2;

/// What [`bound_malloc_arenas`] did, for the startup log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArenaBound {
    /// The cap was set to this many arenas.
    Set(i32),
    /// The environment sets the cap; it was left as it is.
    FromEnvironment,
    /// glibc refused the setting, or this is not glibc; allocation is unchanged.
    Unavailable,
}

/// Whether the environment already caps glibc's arenas.
fn environment_sets_arenas(malloc_arena_max: Option<&str>, glibc_tunables: Option<&str>) -> bool {
    malloc_arena_max.is_some_and(|value| !value.trim().is_empty())
        || glibc_tunables.is_some_and(|tunables| tunables.contains("glibc.malloc.arena_max"))
}

/// Caps glibc's malloc arenas at [`STATION_MALLOC_ARENAS`] unless the
/// environment already does. Call first thing in `main`, before any thread.
pub fn bound_malloc_arenas() -> ArenaBound {
    let arena_max = std::env::var("MALLOC_ARENA_MAX").ok();
    let tunables = std::env::var("GLIBC_TUNABLES").ok();
    if environment_sets_arenas(arena_max.as_deref(), tunables.as_deref()) {
        return ArenaBound::FromEnvironment;
    }
    set_arena_max(STATION_MALLOC_ARENAS)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_arena_max(arenas: i32) -> ArenaBound {
    // SAFETY: mallopt only stores a tuning value inside glibc's allocator
    // (under its own lock); it takes no pointers and is called before the
    // station starts any thread.
    let accepted = unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
    if accepted == 1 { ArenaBound::Set(arenas) } else { ArenaBound::Unavailable }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_arenas: i32) -> ArenaBound {
    ArenaBound::Unavailable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_wins_when_it_names_a_cap() {
        assert!(environment_sets_arenas(Some("4"), None));
        assert!(environment_sets_arenas(None, Some("glibc.malloc.arena_max=4")));
        assert!(environment_sets_arenas(None, Some("glibc.malloc.trim_threshold=1:glibc.malloc.arena_max=8")));
        assert!(!environment_sets_arenas(None, None));
        assert!(!environment_sets_arenas(Some(" "), Some("glibc.malloc.trim_threshold=1")));
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_takes_the_cap() {
        assert_eq!(set_arena_max(STATION_MALLOC_ARENAS), ArenaBound::Set(STATION_MALLOC_ARENAS));
    }
}
