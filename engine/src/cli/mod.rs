//! The `scopecast` binary's subcommands (the library has none of this):
//! each file turns parsed arguments into calls of `scopecast_engine` and
//! words on the terminal. `main.rs` holds the argument grammar and
//! dispatches here.

pub mod calibrate;
pub mod collect;
pub mod delay;
pub mod demo_profile;
pub mod doctor;
pub mod hand_eye_live;
pub mod links;
pub mod recordings;
pub mod replay;
pub mod run;
pub mod snapshot;
