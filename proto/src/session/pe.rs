//! The pool element's side of sessions: the associations pool users open to the PE's port,
//! one session each, numbered as RSPLIB numbers them (1 to 16383) on its one-to-many PE
//! sockets.

use std::collections::{BTreeMap, VecDeque};

use crate::idhash::IdMap;
use std::time::Instant;

use bytes::Bytes;
use tracing::debug;

use super::{SendInfo, SessionOutput};
use crate::handlespace::AssociationId;
use crate::wire::{AsapMessage, BusinessCard, Cookie, PPID_ASAP, PoolElement, PoolHandle};

/// A session of a pool element: one pool user's association.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct SessionId(pub u32);

/// The highest session ID (RSPLIB's `SESSION_SETSIZE` is 16384, IDs start at 1).
pub const MAX_SESSION_ID: u32 = 16383;

/// What a pool element's sessions tell the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeEvent {
    /// A pool user opened a session (RSPLIB's `RSERPOOL_SESSION_CHANGE` / `ADD`).
    SessionAdded {
        /// The session.
        session: SessionId,
    },
    /// A session ended (`RSERPOOL_SESSION_CHANGE` / `REMOVE`).
    SessionRemoved {
        /// The session.
        session: SessionId,
    },
    /// The first Cookie Echo of a session: the state a pool user brings from the PE it used
    /// before (RSPLIB's `MSG_RSERPOOL_COOKIE_ECHO`). Later echoes are ignored.
    CookieEcho {
        /// The session.
        session: SessionId,
        /// The cookie, as the old PE sent it.
        cookie: Bytes,
    },
    /// An application message.
    Message {
        /// The session.
        session: SessionId,
        /// Stream, PPID and ordering.
        info: SendInfo,
        /// The message.
        data: Bytes,
    },
    /// The pool user started a graceful shutdown of the session.
    PeerShutdown {
        /// The session.
        session: SessionId,
    },
}

/// Why a pool element's session refused something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeSessionError {
    /// No such session (never opened, or ended).
    #[error("no session {}", .0.0)]
    UnknownSession(SessionId),
    /// PPID 11 (ASAP) is the session layer's own.
    #[error("PPID 11 (ASAP) is reserved for the session layer")]
    ReservedPpid,
    /// Every session ID is in use.
    #[error("all {MAX_SESSION_ID} session IDs are in use")]
    TooManySessions,
    /// The cookie cannot be encoded (empty, or over 65531 bytes).
    #[error("a cookie must have 1 to 65531 bytes")]
    BadCookie,
}

#[derive(Debug)]
struct Session {
    association: AssociationId,
    cookie_echo_seen: bool,
}

/// The sessions of one pool element.
pub struct PoolElementSessions {
    pool: PoolHandle,
    sessions: BTreeMap<SessionId, Session>,
    by_association: IdMap<AssociationId, SessionId>,
    next_id: u32,
    business_card: Option<Bytes>,
    outputs: VecDeque<SessionOutput>,
    events: VecDeque<PeEvent>,
    bad_control_messages: u64,
}

impl PoolElementSessions {
    /// The sessions of a PE of `pool`.
    pub fn new(pool: PoolHandle) -> Self {
        Self {
            pool,
            sessions: BTreeMap::new(),
            by_association: IdMap::default(),
            next_id: 1,
            business_card: None,
            outputs: VecDeque::new(),
            events: VecDeque::new(),
            bad_control_messages: 0,
        }
    }

    /// Sends a Business Card (RFC 5352 §3.9) to every new session: the pool and the PEs a pool
    /// user should fail over to, in order. Empty: none is sent.
    pub fn set_business_card(&mut self, failover_order: Vec<PoolElement>) {
        self.business_card = if failover_order.is_empty() {
            None
        } else {
            AsapMessage::BusinessCard(BusinessCard {
                pool_handle: self.pool.clone(),
                policy: None,
                elements: failover_order,
            })
            .to_bytes()
            .ok()
            .map(Bytes::from)
        };
    }

    /// The sessions open now.
    pub fn sessions(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.sessions.keys().copied()
    }

    /// The association of a session.
    pub fn association(&self, session: SessionId) -> Option<AssociationId> {
        self.sessions.get(&session).map(|s| s.association)
    }

    /// ASAP messages on sessions that could not be decoded or are not the session layer's.
    pub fn bad_control_messages(&self) -> u64 {
        self.bad_control_messages
    }

    /// A pool user's association to the PE is up: a new session.
    pub fn association_up(
        &mut self,
        now: Instant,
        association: AssociationId,
    ) -> Result<SessionId, PeSessionError> {
        let _ = now;
        if let Some(&s) = self.by_association.get(&association) {
            return Ok(s);
        }
        if self.sessions.len() >= MAX_SESSION_ID as usize {
            return Err(PeSessionError::TooManySessions);
        }
        let mut id = self.next_id;
        while self.sessions.contains_key(&SessionId(id)) {
            id = if id >= MAX_SESSION_ID { 1 } else { id + 1 };
        }
        self.next_id = if id >= MAX_SESSION_ID { 1 } else { id + 1 };
        let session = SessionId(id);
        self.sessions.insert(
            session,
            Session {
                association,
                cookie_echo_seen: false,
            },
        );
        self.by_association.insert(association, session);
        if let Some(card) = &self.business_card {
            self.outputs.push_back(SessionOutput::Send {
                association,
                info: SendInfo {
                    ppid: PPID_ASAP,
                    ..SendInfo::default()
                },
                data: card.clone(),
            });
        }
        self.events.push_back(PeEvent::SessionAdded { session });
        Ok(session)
    }

    /// A session's association ended.
    pub fn association_lost(&mut self, association: AssociationId) {
        if let Some(session) = self.by_association.remove(&association) {
            self.sessions.remove(&session);
            self.events.push_back(PeEvent::SessionRemoved { session });
        }
    }

    /// The pool user started a graceful shutdown.
    pub fn peer_shutdown(&mut self, association: AssociationId) {
        if let Some(&session) = self.by_association.get(&association) {
            self.events.push_back(PeEvent::PeerShutdown { session });
        }
    }

    /// A message arrived on a session's association.
    pub fn message(&mut self, association: AssociationId, info: SendInfo, data: Bytes) {
        let Some(&session) = self.by_association.get(&association) else {
            return;
        };
        if info.ppid != PPID_ASAP {
            self.events.push_back(PeEvent::Message {
                session,
                info,
                data,
            });
            return;
        }
        match AsapMessage::decode(&data) {
            Ok(AsapMessage::CookieEcho(c)) => {
                let s = self.sessions.get_mut(&session).expect("indexed");
                if !s.cookie_echo_seen {
                    s.cookie_echo_seen = true;
                    self.events.push_back(PeEvent::CookieEcho {
                        session,
                        cookie: Bytes::from(c.cookie),
                    });
                }
            }
            // A PU/PE combination's card (§3.9): its pool, for a later failover of ours.
            Ok(AsapMessage::BusinessCard(_)) => {}
            Ok(other) => {
                self.bad_control_messages += 1;
                debug!(
                    message = other.name(),
                    "ignoring an ASAP message on a PE session"
                );
            }
            Err(e) => {
                self.bad_control_messages += 1;
                debug!(error = %e, "undecodable ASAP message on a PE session");
            }
        }
    }

    /// Sends an application message on a session.
    pub fn send(
        &mut self,
        session: SessionId,
        info: SendInfo,
        data: Bytes,
    ) -> Result<(), PeSessionError> {
        if info.ppid == PPID_ASAP {
            return Err(PeSessionError::ReservedPpid);
        }
        let association = self.association_of(session)?;
        self.outputs.push_back(SessionOutput::Send {
            association,
            info,
            data,
        });
        Ok(())
    }

    /// Sends a cookie to the session's pool user (RFC 5352 §3.8; RSPLIB's `rsp_send_cookie`):
    /// it keeps the newest and echoes it to the next PE after a failover.
    pub fn send_cookie(&mut self, session: SessionId, cookie: &[u8]) -> Result<(), PeSessionError> {
        let association = self.association_of(session)?;
        if cookie.is_empty() {
            return Err(PeSessionError::BadCookie);
        }
        let data = AsapMessage::Cookie(Cookie {
            cookie: cookie.to_vec(),
        })
        .to_bytes()
        .map_err(|_| PeSessionError::BadCookie)?;
        self.outputs.push_back(SessionOutput::Send {
            association,
            info: SendInfo {
                ppid: PPID_ASAP,
                ..SendInfo::default()
            },
            data: data.into(),
        });
        Ok(())
    }

    /// Ends a session gracefully.
    pub fn close(&mut self, session: SessionId) -> Result<(), PeSessionError> {
        let association = self.association_of(session)?;
        self.outputs
            .push_back(SessionOutput::Shutdown { association });
        Ok(())
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<SessionOutput> {
        self.outputs.pop_front()
    }

    /// The next thing to tell the application.
    pub fn poll_event(&mut self) -> Option<PeEvent> {
        self.events.pop_front()
    }

    fn association_of(&self, session: SessionId) -> Result<AssociationId, PeSessionError> {
        self.sessions
            .get(&session)
            .map(|s| s.association)
            .ok_or(PeSessionError::UnknownSession(session))
    }
}
