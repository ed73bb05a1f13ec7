//! The viewers' data channels (label [`CHANNEL_LABEL`]): who is in the
//! session (presence), and each viewer's messages checked — size, version,
//! fields, role, rate — before the accepted ones go to the station's
//! [`CommandSink`]. A refused message is answered on that viewer's channel
//! alone (at most [`ERROR_REPLIES_PER_SECOND`] replies a second, so a flood of
//! garbage does not become a flood back); nobody else notices.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use webrtc::data_channel::{DataChannel, DataChannelEvent};

use crate::access::{AccessEvent, AccessSink, Action, Who};
use crate::auth::{Caller, Role};
use crate::protocol::{Command, Notice, PROTOCOL_VERSION, Participant, ProtocolError, RateLimiter, parse_command};

/// The data channel the viewer page opens.
pub const CHANNEL_LABEL: &str = "scopecast";
/// Most error replies per viewer and second.
pub const ERROR_REPLIES_PER_SECOND: u32 = 10;

/// Where accepted commands go: the station's scene (telestration, layers,
/// recording) or a replay's player.
pub trait CommandSink: Send + Sync {
    /// Carries out `command` from viewer `viewer`; an `Err` is sent back to
    /// it, an `Ok(Some(notice))` goes to everyone (a changed state all pages show).
    fn apply(&self, viewer: u64, command: &Command) -> Result<Option<Notice>, String>;
    /// The viewer left: its open strokes end.
    fn left(&self, viewer: u64);
    /// What a viewer hears right after its welcome (the recording or playback state).
    fn greeting(&self) -> Option<Notice> {
        None
    }
}

struct Member {
    participant: Participant,
    /// Who, for the access log (the link's name, never the page's `hello`).
    who: Who,
    channel: Option<Arc<dyn DataChannel>>,
}

/// Everyone in the session and their channels.
pub struct Room {
    members: Mutex<HashMap<u64, Member>>,
    sink: Option<Arc<dyn CommandSink>>,
    access: Option<Arc<dyn AccessSink>>,
    epoch: Instant,
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Counts error replies in one-second windows.
struct ReplyBudget {
    window_start_ns: u64,
    sent: u32,
}

impl ReplyBudget {
    fn take(&mut self, now_ns: u64) -> bool {
        if now_ns.saturating_sub(self.window_start_ns) >= 1_000_000_000 {
            self.window_start_ns = now_ns;
            self.sent = 0;
        }
        self.sent += 1;
        self.sent <= ERROR_REPLIES_PER_SECOND
    }
}

impl Room {
    /// A room whose accepted commands go to `sink` (none: drawing is refused).
    pub fn new(sink: Option<Arc<dyn CommandSink>>) -> Self {
        Self { members: Mutex::new(HashMap::new()), sink, access: None, epoch: Instant::now() }
    }

    /// Tells `access` what each participant does.
    pub fn set_access(&mut self, access: Arc<dyn AccessSink>) {
        self.access = Some(access);
    }

    /// `caller`'s session `id` started; presence shows them by their link's
    /// name until their page says another.
    pub fn join(&self, id: u64, caller: &Caller) {
        let name = caller.name.as_deref().map_or_else(|| format!("viewer {id}"), str::to_string);
        let participant = Participant { id, name, role: caller.role };
        locked(&self.members).insert(id, Member { participant, who: Who::from(caller), channel: None });
    }

    /// A viewer's session ended.
    pub async fn leave(&self, id: u64) {
        if locked(&self.members).remove(&id).is_none() {
            return;
        }
        if let Some(sink) = &self.sink {
            sink.left(id);
        }
        self.announce_presence().await;
    }

    /// Everyone, by id.
    pub fn participants(&self) -> Vec<Participant> {
        let mut all: Vec<Participant> = locked(&self.members).values().map(|m| m.participant.clone()).collect();
        all.sort_by_key(|p| p.id);
        all
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    async fn announce_presence(&self) {
        self.announce(&Notice::Presence { v: PROTOCOL_VERSION, viewers: self.participants() }).await;
    }

    /// Sends `notice` to everyone whose channel is open.
    async fn announce(&self, notice: &Notice) {
        let text = notice.to_json();
        let channels: Vec<Arc<dyn DataChannel>> =
            locked(&self.members).values().filter_map(|m| m.channel.clone()).collect();
        for channel in channels {
            let _ = channel.send_text(&text).await;
        }
    }

    /// Serves viewer `id`'s channel until it closes.
    pub async fn serve(self: Arc<Self>, id: u64, channel: Arc<dyn DataChannel>) {
        match channel.label().await {
            Ok(label) if label == CHANNEL_LABEL => {}
            Ok(label) => {
                tracing::info!(viewer = id, %label, "unknown data channel closed");
                let _ = channel.close().await;
                return;
            }
            Err(_) => return,
        }
        let role = match locked(&self.members).get(&id) {
            Some(member) => member.participant.role,
            None => return,
        };
        let mut limiter = RateLimiter::new(self.now_ns());
        let mut replies = ReplyBudget { window_start_ns: self.now_ns(), sent: 0 };
        while let Some(event) = channel.poll().await {
            match event {
                DataChannelEvent::OnOpen => {
                    if let Some(member) = locked(&self.members).get_mut(&id) {
                        member.channel = Some(channel.clone());
                    }
                    let _ = channel.send_text(&Notice::Welcome { v: PROTOCOL_VERSION, id, role }.to_json()).await;
                    if let Some(greeting) = self.sink.as_ref().and_then(|s| s.greeting()) {
                        let _ = channel.send_text(&greeting.to_json()).await;
                    }
                    self.announce_presence().await;
                }
                DataChannelEvent::OnMessage(message) => {
                    let now_ns = self.now_ns();
                    if let Err(e) = self.handle(id, role, &message.data, &mut limiter, now_ns).await {
                        tracing::debug!(viewer = id, error = %e, "data-channel message refused");
                        if replies.take(now_ns) {
                            let _ = channel.send_text(&Notice::error(&e).to_json()).await;
                        }
                    }
                }
                DataChannelEvent::OnClose => break,
                _ => {}
            }
        }
        if let Some(member) = locked(&self.members).get_mut(&id) {
            member.channel = None;
        }
    }

    async fn handle(
        &self,
        id: u64,
        role: Role,
        bytes: &[u8],
        limiter: &mut RateLimiter,
        now_ns: u64,
    ) -> Result<(), ProtocolError> {
        let command = parse_command(bytes)?;
        let needed = command.needs();
        if role < needed {
            return Err(ProtocolError::Forbidden { command: command.name(), needed, role });
        }
        limiter.admit(command.rate_class(), now_ns)?;
        if let Command::Hello { name } = &command {
            // A named link's holder keeps the name the operator gave them.
            if let Some(member) = locked(&self.members).get_mut(&id)
                && member.who.name.is_none()
            {
                member.participant.name = name.trim().to_string();
            }
            self.announce_presence().await;
            return Ok(());
        }
        let sink = self.sink.as_ref().ok_or_else(|| ProtocolError::Refused("this station takes no drawing".into()))?;
        let notice = sink.apply(id, &command).map_err(ProtocolError::Refused)?;
        if let (Some(access), Some(action)) = (&self.access, Action::of(&command)) {
            let who = locked(&self.members).get(&id).map(|m| m.who.clone());
            if let Some(who) = who {
                access.record(AccessEvent::Acted { session: id, who, action });
            }
        }
        if let Some(notice) = notice {
            self.announce(&notice).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_replies_are_bounded_per_second() {
        let mut budget = ReplyBudget { window_start_ns: 0, sent: 0 };
        let sent = (0..100).filter(|_| budget.take(500_000_000)).count();
        assert_eq!(sent, ERROR_REPLIES_PER_SECOND as usize);
        assert!(budget.take(1_000_000_000), "a new second, a new budget");
    }
}
