//! Who may start a WHEP session now: a sans-IO account of every session,
//! from the offer until it ends, so that limits hold under concurrency (the
//! seat is taken before the slow part, ICE gathering and DTLS, starts).
//!
//! - At most `max_sessions` at once; viewer-role sessions may take all but
//!   `reserved_for_staff` of them, so an annotator or operator (the
//!   surgeon, the trainer) can still join while viewer-token floods are
//!   refused.
//! - Sessions still setting up (offered, not yet connected) are limited per
//!   credential and per address: each costs ICE gathering and a DTLS
//!   handshake, and a flood of offers whose peers never connect must not
//!   keep everyone else out. The WHEP layer drops sessions that have not
//!   connected within a few seconds (`WhepSettings::connect_deadline`).
//!
//! Refusals are values the HTTP layer turns into 503 (full) or 429 (too
//! many setups), each with `Retry-After`.

use std::collections::HashMap;
use std::net::IpAddr;

use thiserror::Error;

use crate::auth::{Caller, CredentialId, Role};

/// Why an offer was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    /// Every seat this role may take is taken.
    #[error("the station already serves {limit} viewers")]
    Full {
        /// The seats this role may take.
        limit: usize,
    },
    /// This credential already has `limit` sessions setting up.
    #[error("{limit} sessions of this link are still connecting; try again in a moment")]
    CredentialBusy {
        /// Setups allowed per credential.
        limit: usize,
    },
    /// This address already has `limit` sessions setting up.
    #[error("{limit} sessions from this address are still connecting; try again in a moment")]
    AddressBusy {
        /// Setups allowed per address.
        limit: usize,
    },
}

/// The limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sessions at once, all roles.
    pub max_sessions: usize,
    /// Seats viewer-role credentials may not take.
    pub reserved_for_staff: usize,
    /// Sessions setting up at once per credential.
    pub setups_per_credential: usize,
    /// Sessions setting up at once per address.
    pub setups_per_address: usize,
}

impl Limits {
    /// The limits for `max_sessions`: an eighth of the seats (1 to 4, never
    /// all) kept for annotators and operators; 12 setups per credential (a
    /// class of trainees opening the same link at once) and 4 per address
    /// (viewer-role and staff setups counted apart).
    pub fn for_sessions(max_sessions: usize) -> Self {
        Self {
            max_sessions,
            reserved_for_staff: (max_sessions / 8).clamp(1, 4).min(max_sessions.saturating_sub(1)),
            setups_per_credential: 12,
            setups_per_address: 4,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    credential: CredentialId,
    role: Role,
    address: Option<IpAddr>,
    connected: bool,
}

/// Every session's seat, by session number.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    seats: HashMap<u64, Entry>,
}

impl Admission {
    /// No session yet.
    pub fn new(limits: Limits) -> Self {
        Self { limits, seats: HashMap::new() }
    }

    /// Takes a seat for session `id` of `caller` from `address`, or says why not.
    pub fn admit(&mut self, id: u64, caller: &Caller, address: Option<IpAddr>) -> Result<(), Refusal> {
        let limits = self.limits;
        if self.seats.len() >= limits.max_sessions {
            return Err(Refusal::Full { limit: limits.max_sessions });
        }
        let viewer_seats = limits.max_sessions.saturating_sub(limits.reserved_for_staff);
        if caller.role == Role::Viewer && self.seats.values().filter(|e| e.role == Role::Viewer).count() >= viewer_seats
        {
            return Err(Refusal::Full { limit: viewer_seats });
        }
        // Per address, staff and viewer-role setups are counted apart: a
        // viewer-token flood from behind the hospital's NAT address must not
        // keep the operator at that address out.
        let staff = |role: Role| role > Role::Viewer;
        let setting_up = self.seats.values().filter(|e| !e.connected);
        let (by_credential, by_address) = setting_up.fold((0, 0), |(c, a), e| {
            (
                c + usize::from(e.credential == caller.credential),
                a + usize::from(address.is_some() && e.address == address && staff(e.role) == staff(caller.role)),
            )
        });
        if by_credential >= limits.setups_per_credential {
            return Err(Refusal::CredentialBusy { limit: limits.setups_per_credential });
        }
        if by_address >= limits.setups_per_address {
            return Err(Refusal::AddressBusy { limit: limits.setups_per_address });
        }
        self.seats.insert(id, Entry { credential: caller.credential, role: caller.role, address, connected: false });
        Ok(())
    }

    /// Session `id` connected (it no longer counts as setting up).
    pub fn connected(&mut self, id: u64) {
        if let Some(entry) = self.seats.get_mut(&id) {
            entry.connected = true;
        }
    }

    /// Whether session `id` has connected.
    pub fn is_connected(&self, id: u64) -> bool {
        self.seats.get(&id).is_some_and(|e| e.connected)
    }

    /// Session `id` ended (or was never set up): its seat is free.
    pub fn release(&mut self, id: u64) {
        self.seats.remove(&id);
    }

    /// Seats taken.
    pub fn taken(&self) -> usize {
        self.seats.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(credential: usize, role: Role) -> Caller {
        Caller::config(credential, role)
    }

    fn address(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn viewers_leave_seats_for_staff() {
        let mut admission = Admission::new(Limits { setups_per_address: 99, ..Limits::for_sessions(8) });
        let viewer = caller(0, Role::Viewer);
        for id in 0..7 {
            admission.admit(id, &viewer, address(id as u8)).expect("a viewer's seat");
            admission.connected(id);
        }
        assert_eq!(admission.admit(7, &viewer, address(7)), Err(Refusal::Full { limit: 7 }));
        admission.admit(7, &caller(1, Role::Operator), address(8)).expect("the reserved seat");
        assert_eq!(admission.admit(8, &caller(2, Role::Annotator), address(9)), Err(Refusal::Full { limit: 8 }));
        admission.release(3);
        admission.admit(8, &viewer, address(3)).expect("a freed seat");
        assert_eq!(admission.taken(), 8);
    }

    #[test]
    fn setups_are_limited_per_address_and_per_credential_until_they_connect() {
        let mut admission = Admission::new(Limits::for_sessions(32));
        let flood = caller(0, Role::Viewer);
        for id in 0..4 {
            admission.admit(id, &flood, address(66)).expect("within the address's setups");
        }
        assert_eq!(admission.admit(4, &flood, address(66)), Err(Refusal::AddressBusy { limit: 4 }));
        admission.admit(90, &caller(5, Role::Operator), address(66)).expect("the operator at the flooded address");
        admission.release(90);
        admission.admit(4, &flood, address(7)).expect("another address");
        admission.connected(0);
        admission.admit(5, &flood, address(66)).expect("a setup finished");
        for id in 6..13 {
            admission.admit(id, &flood, address(id as u8)).expect("other addresses");
        }
        assert_eq!(admission.admit(13, &flood, address(99)), Err(Refusal::CredentialBusy { limit: 12 }));
        admission.admit(13, &caller(1, Role::Viewer), address(99)).expect("another credential");
        assert!(admission.is_connected(0) && !admission.is_connected(5));
    }

    #[test]
    fn a_small_station_keeps_one_seat_for_viewers() {
        assert_eq!(Limits::for_sessions(1).reserved_for_staff, 0);
        assert_eq!(Limits::for_sessions(2).reserved_for_staff, 1);
        assert_eq!(Limits::for_sessions(32).reserved_for_staff, 4);
        assert_eq!(Limits::for_sessions(256).reserved_for_staff, 4);
    }
}
