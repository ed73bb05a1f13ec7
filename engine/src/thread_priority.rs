//! The frame path's standing with the scheduler. A browser on the same
//! machine (a trainer's laptop, a station where staff open the viewer) raises
//! its own display threads to nice -8 (Chromium's `kDisplayCritical`, where
//! it may: as root or with `CAP_SYS_NICE`); the station's capture, compositor,
//! encoder and sending threads at nice 0 then wait behind them, and a frame
//! late at the station is late on every screen. Measured here (2 cores,
//! Chromium watching 720p60, `glass_to_glass`): capture → sink p99 56–176 ms
//! (median 76) in 4 runs at nice 0, 32–80 ms (median 49) in 10 at -8.
//! (Where the kernel groups processes by session, autogroup, a browser
//! started elsewhere is weighed as one group against the station's: nice
//! then orders threads within a group.)
//!
//! The nice value is set once a process ([`set_frame_path_nice`], from
//! `threads.frame_path_nice`); each frame-path thread takes it as it starts
//! ([`enter_frame_path`]) and may give it back ([`leave_frame_path`]).
//! GStreamer's streaming threads take the value of the thread that built
//! their pipeline ([`frame_path_nice_here`],
//! [`crate::gst_runtime::raise_streaming_threads`]), so a pipeline built off
//! the frame path (the clean recording's encoder) stays as it is; threads
//! those threads start (x264's) inherit it. Where the system refuses, the
//! station says so once and runs on at normal priority.
//!
//! On Linux the nice value belongs to each thread, not the process
//! (setpriority(2), "NOTES"; the thread's id as `who`).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use thiserror::Error;

/// Chromium's nice value for display-critical threads (`base/threading/
/// platform_thread_linux.cc`, `kThreadTypeToNiceValueMap`).
pub const DISPLAY_CRITICAL_NICE: i32 = -8;

/// The frame path's nice value; 0 leaves the threads as they are.
static FRAME_PATH_NICE: AtomicI32 = AtomicI32::new(0);

/// The first refusal has been said.
static REFUSAL_SAID: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The nice value this thread entered the frame path with (0: not on it).
    static ENTERED_WITH: Cell<i32> = const { Cell::new(0) };
    /// The nice value it had before, where entering changed it.
    static BEFORE_ENTERING: Cell<Option<i32>> = const { Cell::new(None) };
}

/// A thread's nice value could not be set.
#[derive(Debug, Error)]
pub enum PriorityError {
    /// Outside what the kernel accepts.
    #[error("nice {nice} is outside -20..=19")]
    OutOfRange {
        /// What was asked.
        nice: i32,
    },
    /// The kernel refused (a raise needs root, `CAP_SYS_NICE`, or an
    /// `RLIMIT_NICE` of at least `20 - nice`).
    #[error(
        "nice {nice} refused ({source}): it needs root, CAP_SYS_NICE (setcap cap_sys_nice+ep on the binary) or \
         RLIMIT_NICE ≥ {rlimit} (limits.conf: \"<user> - nice {nice}\")"
    )]
    Refused {
        /// What was asked.
        nice: i32,
        /// The `RLIMIT_NICE` that would allow it (setrlimit(2): the ceiling is `20 - rlim_cur`).
        rlimit: i32,
        /// The kernel's answer.
        source: std::io::Error,
    },
    /// This system sets no per-thread nice values.
    #[error("per-thread priorities are not set on this system")]
    Unsupported,
}

/// Sets the calling thread's nice value (-20 first … 19 last).
pub fn set_current_thread_nice(nice: i32) -> Result<(), PriorityError> {
    if !(-20..=19).contains(&nice) {
        return Err(PriorityError::OutOfRange { nice });
    }
    set_nice(nice)
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn set_nice(nice: i32) -> Result<(), PriorityError> {
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
    let result = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
    };
    if result == 0 {
        Ok(())
    } else {
        Err(PriorityError::Refused { nice, rlimit: 20 - nice, source: std::io::Error::last_os_error() })
    }
}

#[cfg(not(target_os = "linux"))]
fn set_nice(_nice: i32) -> Result<(), PriorityError> {
    Err(PriorityError::Unsupported)
}

/// The calling thread's nice value, from `/proc/thread-self/stat` (proc(5):
/// field 19, counted after the command name's closing parenthesis since
/// the name may hold spaces).
#[cfg(target_os = "linux")]
pub fn current_thread_nice() -> Option<i32> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name; field 19 is 16 further.
    after_name.split_whitespace().nth(16)?.parse().ok()
}

/// The calling thread's nice value (not read on this system).
#[cfg(not(target_os = "linux"))]
pub fn current_thread_nice() -> Option<i32> {
    None
}

/// Sets the nice value the frame path's threads take from now on (the
/// station, once, from its config); 0 leaves them alone.
pub fn set_frame_path_nice(nice: i32) {
    FRAME_PATH_NICE.store(nice, Ordering::Relaxed);
}

/// The nice value frame-path threads take (0: none).
pub fn frame_path_nice() -> i32 {
    FRAME_PATH_NICE.load(Ordering::Relaxed)
}

/// Called first on each frame-path thread: takes the frame path's nice
/// value. A refusal is logged once a process (with how to allow it); the
/// thread runs on as it was.
pub fn enter_frame_path() {
    enter_frame_path_at(frame_path_nice());
}

/// [`enter_frame_path`] with the nice value given (0: the thread is left alone).
pub fn enter_frame_path_at(nice: i32) {
    if nice == 0 {
        return;
    }
    ENTERED_WITH.set(nice);
    let before = current_thread_nice();
    match set_current_thread_nice(nice) {
        Ok(()) => {
            if BEFORE_ENTERING.get().is_none() {
                BEFORE_ENTERING.set(before);
            }
        }
        Err(e) => {
            if !REFUSAL_SAID.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    error = %e,
                    "the frame path runs at normal priority: a busy machine (a browser watching on it) can delay \
                     its frames; set threads.frame_path_nice = 0 to stop asking"
                );
            }
        }
    }
}

/// The nice value the calling thread entered the frame path with (0: it did
/// not); pipelines it builds give their streaming threads the same.
pub fn frame_path_nice_here() -> i32 {
    ENTERED_WITH.get()
}

/// Gives back what [`enter_frame_path`] changed on the calling thread (a
/// pooled thread leaving a pipeline, a blocking task on the HTTP runtime).
/// Raising the nice value again is always allowed.
pub fn leave_frame_path() {
    ENTERED_WITH.set(0);
    if let Some(before) = BEFORE_ENTERING.take() {
        // Raising the value back is always allowed; should it fail, the thread stays raised.
        let _ = set_current_thread_nice(before);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_can_lower_itself_and_a_refused_raise_says_what_allows_it() {
        assert!(matches!(set_current_thread_nice(-21), Err(PriorityError::OutOfRange { nice: -21 })));
        assert!(matches!(set_current_thread_nice(20), Err(PriorityError::OutOfRange { nice: 20 })));
        let mine = current_thread_nice();
        let other = std::thread::spawn(|| {
            // Anyone may lower a thread's priority (19 is the lowest); it is this thread's alone.
            set_current_thread_nice(19).expect("lowering is always allowed");
            current_thread_nice()
        })
        .join()
        .expect("thread");
        assert_eq!(other, Some(19));
        assert_eq!(current_thread_nice(), mine, "the asking thread's own value is untouched");
        let refused = PriorityError::Refused { nice: -8, rlimit: 28, source: std::io::Error::from_raw_os_error(1) };
        let said = refused.to_string();
        assert!(said.contains("CAP_SYS_NICE") && said.contains("RLIMIT_NICE ≥ 28"), "{said}");
    }

    #[test]
    fn a_frame_path_thread_takes_the_nice_value_and_zero_leaves_it_alone() {
        // Lowering (a positive value) is allowed without privileges, so this
        // runs wherever the tests run. (The process-wide value is the
        // station's to set; tests in this process start stations.)
        let seen = std::thread::spawn(|| {
            enter_frame_path_at(19);
            current_thread_nice()
        })
        .join()
        .expect("thread");
        assert_eq!(seen, Some(19));
        let mine = current_thread_nice();
        let untouched = std::thread::spawn(|| {
            enter_frame_path_at(0);
            current_thread_nice()
        })
        .join()
        .expect("thread");
        assert_eq!(untouched, mine, "a new thread starts at its creator's value; 0 changes nothing");
    }

    #[test]
    fn leaving_gives_back_what_entering_changed_where_the_system_allows() {
        let (entered, here, left, here_after, base, may_raise) = std::thread::spawn(|| {
            let base = current_thread_nice();
            // Whether this process may lower a nice value (root, CAP_SYS_NICE,
            // RLIMIT_NICE): coming back from 19 needs it.
            let may_raise = std::thread::spawn(|| set_current_thread_nice(-1).is_ok()).join().expect("probe");
            enter_frame_path_at(19);
            let (entered, here) = (current_thread_nice(), frame_path_nice_here());
            leave_frame_path();
            (entered, here, current_thread_nice(), frame_path_nice_here(), base, may_raise)
        })
        .join()
        .expect("thread");
        assert_eq!((entered, here), (Some(19), 19));
        assert_eq!(here_after, 0, "off the frame path after leaving");
        // With the privilege the thread is back where it was; without it, it stays lowered (never raised).
        assert_eq!(left, if may_raise { base } else { Some(19) });
    }
}
