//! The room's async shell: each viewer's data channel, its events handed to
//! the sans-IO [`Room`] with the station's clock, and the room's notices
//! delivered to their recipients. Decisions live in the room; this only
//! moves bytes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use webrtc::data_channel::{DataChannel, DataChannelEvent};

use crate::access::AccessSink;
use crate::auth::Caller;
use crate::clock::StationClock;
use crate::fanout::ViewerId;
use crate::protocol::{Notice, Participant};
use crate::room::{CHANNEL_LABEL, CommandSink, Outgoing, Room, To};

/// What an announcement is about: each topic keeps only its newest notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Topic {
    /// Whether every tracked model has a current pose.
    Tracking,
    /// The registration desk's state (fiducials, errors, acceptance).
    Registration,
    /// The marks drawn and where each stays (`Notice::Marks`).
    Marks,
}

/// What the station announces to every page on its own (not in answer to a
/// message): the newest notice of each [`Topic`]. Only the newest matters, so
/// a watch channel (a page that was busy gets the latest of each topic,
/// never a backlog, and never loses one topic's state to another's).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Announced {
    by_topic: std::collections::BTreeMap<Topic, Notice>,
}

impl Announced {
    /// `topic` now says `notice`.
    pub fn set(&mut self, topic: Topic, notice: Notice) {
        self.by_topic.insert(topic, notice);
    }

    /// `topic`'s newest notice.
    pub fn get(&self, topic: Topic) -> Option<&Notice> {
        self.by_topic.get(&topic)
    }

    /// The notices of `self` that `heard` does not have yet (every one for an
    /// empty `heard`), in topic order.
    pub fn news_since(&self, heard: &Announced) -> Vec<Notice> {
        self.by_topic
            .iter()
            .filter(|(topic, notice)| heard.by_topic.get(topic) != Some(notice))
            .map(|(_, n)| n.clone())
            .collect()
    }
}

/// The receiving end of the station's announcements.
pub type Announcements = tokio::sync::watch::Receiver<Announced>;

/// The sending end of [`Announcements`] (any thread; never blocks):
/// `announcer.send_modify(|a| a.set(topic, notice))`.
pub type Announcer = tokio::sync::watch::Sender<Announced>;

/// A new announcement channel, with nothing announced yet.
pub fn announcements() -> (Announcer, Announcements) {
    tokio::sync::watch::channel(Announced::default())
}

/// The room and the channels of those in it.
pub struct RoomChannels {
    room: Mutex<Room>,
    channels: Mutex<HashMap<ViewerId, Arc<dyn DataChannel>>>,
    clock: StationClock,
    announcements: Mutex<Option<Announcements>>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RoomChannels {
    /// A room whose accepted commands go to `sink`, timed by `clock`.
    pub fn new(sink: Option<Arc<dyn CommandSink>>, clock: StationClock) -> Self {
        Self {
            room: Mutex::new(Room::new(sink)),
            channels: Mutex::new(HashMap::new()),
            clock,
            announcements: Mutex::new(None),
        }
    }

    /// Every open page also hears `announcements` (the newest on opening, then each change).
    pub fn set_announcements(&self, announcements: Announcements) {
        *locked(&self.announcements) = Some(announcements);
    }

    /// Tells `access` what each participant does.
    pub fn set_access(&self, access: Arc<dyn AccessSink>) {
        locked(&self.room).set_access(access);
    }

    /// `caller`'s session `viewer` started.
    pub fn join(&self, viewer: ViewerId, caller: &Caller) {
        locked(&self.room).join(viewer, caller, self.clock.now_ns());
    }

    /// `viewer`'s session ended.
    pub async fn leave(&self, viewer: ViewerId) {
        locked(&self.channels).remove(&viewer);
        let out = locked(&self.room).leave(viewer);
        self.deliver(out).await;
    }

    /// Everyone, by id.
    pub fn participants(&self) -> Vec<Participant> {
        locked(&self.room).participants()
    }

    /// Sends each notice to its recipients whose channel is open.
    async fn deliver(&self, out: Vec<Outgoing>) {
        for Outgoing { to, notice } in out {
            let text = notice.to_json();
            let channels: Vec<Arc<dyn DataChannel>> = {
                let channels = locked(&self.channels);
                match to {
                    To::One(viewer) => channels.get(&viewer).cloned().into_iter().collect(),
                    To::Everyone => channels.values().cloned().collect(),
                }
            };
            for channel in channels {
                let _ = channel.send_text(&text).await;
            }
        }
    }

    /// Sends `notices` to `viewer`, if its channel is open.
    async fn announce_to(&self, viewer: ViewerId, notices: Vec<Notice>) {
        if !notices.is_empty() {
            self.deliver(notices.into_iter().map(|notice| Outgoing { to: To::One(viewer), notice }).collect()).await;
        }
    }

    /// Serves `viewer`'s channel until it closes.
    pub async fn serve(self: Arc<Self>, viewer: ViewerId, channel: Arc<dyn DataChannel>) {
        match channel.label().await {
            Ok(label) if label == CHANNEL_LABEL => {}
            Ok(label) => {
                tracing::info!(viewer = viewer.0, %label, "unknown data channel closed");
                let _ = channel.close().await;
                return;
            }
            Err(_) => return,
        }
        if !locked(&self.room).has(viewer) {
            return;
        }
        let mut announcements = locked(&self.announcements).clone();
        // What this page has heard of them (it hears only what changed).
        let mut heard_so_far = Announced::default();
        loop {
            let event = match announcements.as_mut() {
                Some(heard) => tokio::select! {
                    event = channel.poll() => event,
                    changed = heard.changed() => {
                        match changed {
                            // Before the channel opens nothing is delivered: it hears all on opening.
                            Ok(()) if !locked(&self.channels).contains_key(&viewer) => {
                                heard.borrow_and_update();
                            }
                            Ok(()) => {
                                let now = heard.borrow_and_update().clone();
                                let news = now.news_since(&heard_so_far);
                                heard_so_far = now;
                                self.announce_to(viewer, news).await;
                            }
                            // The station's end is gone: no more announcements.
                            Err(_) => announcements = None,
                        }
                        continue;
                    }
                },
                None => channel.poll().await,
            };
            let Some(event) = event else { break };
            let out = match event {
                DataChannelEvent::OnOpen => {
                    let mut out = locked(&self.room).opened(viewer);
                    if !out.is_empty() {
                        // Still in the room: from now on it hears what everyone hears.
                        locked(&self.channels).insert(viewer, channel.clone());
                        if let Some(now) = announcements.as_mut().map(|a| a.borrow_and_update().clone()) {
                            out.extend(
                                now.news_since(&heard_so_far)
                                    .into_iter()
                                    .map(|notice| Outgoing { to: To::One(viewer), notice }),
                            );
                            heard_so_far = now;
                        }
                    }
                    out
                }
                DataChannelEvent::OnMessage(message) => {
                    locked(&self.room).message(viewer, &message.data, self.clock.now_ns())
                }
                DataChannelEvent::OnClose => break,
                _ => continue,
            };
            self.deliver(out).await;
        }
        let mut channels = locked(&self.channels);
        if channels.get(&viewer).is_some_and(|open| Arc::ptr_eq(open, &channel)) {
            channels.remove(&viewer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::PROTOCOL_VERSION;

    #[test]
    fn a_page_hears_each_topic_newest_and_only_what_changed() {
        let tracking = |tracked| Notice::Tracking { v: PROTOCOL_VERSION, tracked, message: String::new() };
        let mut now = Announced::default();
        now.set(Topic::Tracking, tracking(false));
        now.set(Topic::Registration, Notice::Recording { v: PROTOCOL_VERSION, on: true });
        let heard = Announced::default();
        assert_eq!(now.news_since(&heard).len(), 2, "a new page hears every topic");
        let heard = now.clone();
        now.set(Topic::Tracking, tracking(true));
        assert_eq!(now.news_since(&heard), vec![tracking(true)], "then only the topic that changed");
        assert!(now.news_since(&now).is_empty());
    }
}
