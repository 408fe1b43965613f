//! The handlespace: pools by pool handle, their pool elements, and the indexes a registrar and a
//! pool user's cache need — by (pool handle, PE ID), by home registrar (takeover, per-owner
//! checksums), by the association a PE registered over, and by deadline (keep-alive, expiry) —
//! with the PE checksums of RFC 5353 §3.6.2 kept incrementally.
//!
//! Registration, update (re-registration), removal and selection cost O(log n).
//!
//! # Data structures
//!
//! * PEs live in a slab of fixed-size chunks of 168-byte records (the wire [`PoolElement`] plus
//!   selection state, deadline, association, counters), addressed by [`PeHandle`] (slot and
//!   generation); the records hold the transports' address lists on the heap.
//! * Pools: a hash map by pool handle; per pool a B-tree by PE ID and the selection index of its
//!   policy ([`PoolSelector`]: a B-tree in policy order, or a Fenwick tree of weights).
//! * Ownership: a B-tree of (home registrar, pool, PE ID), and a PE count and a [`Checksum`] per
//!   home registrar; the whole handlespace has its own [`Checksum`].
//! * Associations: a B-tree of (association, PE); deadlines: a binary heap of PEs, each PE
//!   storing its deadline and its heap position.
//!
//! With one IPv4 address per transport, a PE costs about 270–300 bytes with all indexes (about
//! 300–340 bytes counted as malloc chunks), as `benches/handlespace.rs` measures.
//!
//! # Pool consistency (RFC 5352 §3.1)
//!
//! The first PE of a pool fixes the pool's policy type, user transport type and transport use
//! (data only / data plus control). A later registration — new PE or re-registration — that
//! differs is refused with the RFC 5354 cause: Inconsistent Pooling Policy (0x5, with the pool's
//! policy parameter), Inconsistent Transport Type (0x7, with a transport parameter of the pool's
//! type) or Inconsistent Data/Control Configuration (0x8). A policy type the selection engine
//! does not know is refused with Invalid Values (0x3, with the policy parameter). A pool whose
//! last PE leaves is removed, so the next first PE sets the pool up anew.
//!
//! # Example
//!
//! ```
//! use std::net::Ipv4Addr;
//! use rand::{SeedableRng, rngs::StdRng};
//! use rserpool_proto::handlespace::Handlespace;
//! use rserpool_proto::policy::SelectionRequest;
//! use rserpool_proto::wire::*;
//!
//! let mut hs = Handlespace::new();
//! let pool = PoolHandle::try_from("EchoPool").unwrap();
//! for id in 1..=4 {
//!     let pe = PoolElement {
//!         id: PoolElementId(id),
//!         home_registrar: RegistrarId(0x1111_1111),
//!         registration_life: 90_000,
//!         user_transport: Transport::Sctp(SctpTransport {
//!             port: 7,
//!             transport_use: TransportUse::DataOnly,
//!             addresses: vec![Ipv4Addr::new(198, 18, 0, id as u8).into()],
//!         }),
//!         policy: Policy::RoundRobin,
//!         asap_transport: None,
//!     };
//!     assert!(hs.register(&pool, pe, None).unwrap().is_new());
//! }
//! let mut rng = StdRng::seed_from_u64(1);
//! let mut picked = Vec::new();
//! hs.select(&pool, SelectionRequest::registrar(3), &mut rng, &mut picked).unwrap();
//! let ids: Vec<u32> = picked.iter().map(|&pe| hs.get(pe).unwrap().id().0).collect();
//! assert_eq!(ids, [1, 2, 3]);
//! assert_eq!(hs.owner_checksum(RegistrarId(0x1111_1111)), hs.checksum());
//! ```

mod checksum;
mod deadlines;
mod slab;

pub use checksum::Checksum;

use deadlines::DeadlineHeap;
use slab::Slab;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::policy::{self, PoolSelector, SelectionRequest, SelectionState};
use crate::wire::{
    CauseCode, ErrorCause, ParamType, Policy, PolicyType, PoolElement, PoolElementId, PoolHandle,
    RegistrarId, Transport, TransportUse,
};

/// An association (SCTP or TCP mapping) as the transport layer names it; opaque here. A lost
/// association removes the PEs registered over it ([`Handlespace::remove_association`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct AssociationId(pub u64);

/// A reference to a stored PE, valid until that PE is removed. Cheap to copy and to keep in the
/// registrar's own tables; a handle of a removed PE never refers to another PE.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PeHandle {
    slot: u32,
    generation: u32,
}

/// What a PE's deadline stands for (RSPLIB keeps at most one pending timer per PE).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PeTimer {
    /// Home registrar: time to send the next ASAP Endpoint Keep-Alive.
    KeepAliveTransmission,
    /// Home registrar: the Keep-Alive Ack did not come in time; the PE is to be removed.
    KeepAliveTimeout,
    /// Registration life over (non-home registrars) or cache entry stale (pool user).
    Expiry,
}

/// A position in the handlespace's iteration order, to resume an iteration after it (ENRP Handle
/// Table Responses are sent in parts). A PE present for the whole iteration is visited exactly
/// once however the handlespace changes in between.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Cursor {
    pool: u32,
    id: PoolElementId,
}

/// Whether a registration added a PE or updated one already there.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RegistrationKind {
    /// A new PE (RFC 5352 §3.1 rules 1 and 2).
    New,
    /// A re-registration (rule 3): the PE's attributes were replaced.
    Updated {
        /// The home registrar before the update (rule 4: the registering server takes over).
        previous_home: RegistrarId,
    },
}

/// An accepted registration.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Registered {
    /// The stored PE ([`Handlespace::get`] gives it, e.g. for an ENRP Handle Update).
    pub pe: PeHandle,
    /// New or updated.
    pub kind: RegistrationKind,
}

impl Registered {
    /// Whether the PE is new.
    pub fn is_new(&self) -> bool {
        self.kind == RegistrationKind::New
    }
}

/// A PE taken out of the handlespace.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RemovedPe {
    /// Its pool.
    pub pool_handle: PoolHandle,
    /// The PE as it was stored (for an ENRP Handle Update DEL_PE).
    pub element: PoolElement,
    /// The association it was registered over, if any.
    pub association: Option<AssociationId>,
}

/// A refused registration (RFC 5352 §3.1), with the RFC 5354 cause to send back.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum RegistrationError {
    /// The PE's policy type differs from the pool's.
    #[error("inconsistent pooling policy: the pool uses {}, the PE {requested}", .pool.policy_type())]
    InconsistentPolicy {
        /// The pool's policy (its type, values 0).
        pool: Policy,
        /// The PE's policy type.
        requested: PolicyType,
    },
    /// The PE's user transport type differs from the pool's.
    #[error("inconsistent transport type: the pool uses {:?}, the PE {:?}", .pool.param_type(), .requested)]
    InconsistentTransport {
        /// A transport of the pool's type (its first PE's).
        pool: Transport,
        /// The PE's transport type.
        requested: ParamType,
    },
    /// The PE's transport use (data only / data plus control) differs from the pool's.
    #[error(
        "inconsistent data/control configuration: the pool uses {pool:?}, the PE {requested:?}"
    )]
    InconsistentDataControl {
        /// The pool's transport use.
        pool: TransportUse,
        /// The PE's.
        requested: TransportUse,
    },
    /// A policy type the selection engine does not know.
    #[error("unsupported pool policy {}", .0.policy_type())]
    UnsupportedPolicy(Policy),
}

impl RegistrationError {
    /// The RFC 5354 cause code (never one of RSPLIB's private codes).
    pub fn cause_code(&self) -> CauseCode {
        match self {
            Self::InconsistentPolicy { .. } => CauseCode::INCONSISTENT_POOLING_POLICY,
            Self::InconsistentTransport { .. } => CauseCode::INCONSISTENT_TRANSPORT_TYPE,
            Self::InconsistentDataControl { .. } => {
                CauseCode::INCONSISTENT_DATA_CONTROL_CONFIGURATION
            }
            Self::UnsupportedPolicy(_) => CauseCode::INVALID_VALUES,
        }
    }

    /// The error cause for the Registration Response's Operation Error, with its cause-specific
    /// TLV: the pool's policy (0x5), a transport of the pool's type (0x7), nothing (0x8), or the
    /// refused policy parameter (0x3).
    pub fn error_cause(&self) -> ErrorCause {
        let built = match self {
            Self::InconsistentPolicy { pool, .. } => ErrorCause::inconsistent_policy(pool),
            Self::InconsistentTransport { pool, .. } => ErrorCause::inconsistent_transport(pool),
            Self::InconsistentDataControl { .. } => Ok(ErrorCause::new(self.cause_code())),
            Self::UnsupportedPolicy(p) => ErrorCause::inconsistent_policy(p).map(|c| ErrorCause {
                code: CauseCode::INVALID_VALUES,
                info: c.info,
            }),
        };
        // Encoding a policy or transport parameter only fails beyond 64 KiB.
        built.unwrap_or_else(|_| ErrorCause::new(self.cause_code()))
    }
}

/// A handle resolution for a pool the handlespace does not hold (RFC 5354 cause 0x9).
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[error("unknown pool handle")]
pub struct UnknownPoolHandle;

impl UnknownPoolHandle {
    /// Unknown Pool Handle (0x9).
    pub fn cause_code(&self) -> CauseCode {
        CauseCode::UNKNOWN_POOL_HANDLE
    }
}

/// One pool.
#[derive(Clone, Debug)]
struct Pool {
    handle: PoolHandle,
    /// Word sum of the padded handle, for the checksums.
    handle_words: u64,
    /// The pool's policy: its type with zero values.
    policy: Policy,
    /// The first PE's user transport: the pool's transport type.
    transport: Transport,
    transport_use: TransportUse,
    selector: PoolSelector,
    by_id: BTreeMap<PoolElementId, u32>,
}

impl Pool {
    fn check(&self, pe: &PoolElement) -> Result<(), RegistrationError> {
        let t = pe.policy.policy_type();
        if t != self.selector.policy_type() {
            return Err(RegistrationError::InconsistentPolicy {
                pool: self.policy.clone(),
                requested: t,
            });
        }
        if pe.user_transport.param_type() != self.transport.param_type() {
            return Err(RegistrationError::InconsistentTransport {
                pool: self.transport.clone(),
                requested: pe.user_transport.param_type(),
            });
        }
        if pe.user_transport.transport_use() != self.transport_use {
            return Err(RegistrationError::InconsistentDataControl {
                pool: self.transport_use,
                requested: pe.user_transport.transport_use(),
            });
        }
        Ok(())
    }
}

/// One stored PE (168 bytes plus the transports' address lists).
#[derive(Clone, Debug)]
struct PeRecord {
    element: PoolElement,
    selection: SelectionState,
    /// Nanoseconds from the handlespace's epoch; [`NO_DEADLINE`] if none.
    deadline: i64,
    /// Valid if `has_association`.
    association: u64,
    pool: u32,
    /// Position in the deadline heap, or [`deadlines::NOT_QUEUED`].
    heap_pos: u32,
    generation: u32,
    unreachable_reports: u16,
    timer: PeTimer,
    has_association: bool,
}

const NO_DEADLINE: i64 = i64::MIN;

impl PeRecord {
    fn association(&self) -> Option<AssociationId> {
        self.has_association
            .then_some(AssociationId(self.association))
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct OwnerStats {
    count: usize,
    checksum: Checksum,
}

/// The handlespace: pools, PEs and their indexes. See the [module docs](self).
#[derive(Clone, Debug, Default)]
pub struct Handlespace {
    pools: Vec<Option<Pool>>,
    free_pools: Vec<u32>,
    pool_index: HashMap<PoolHandle, u32>,
    slab: Slab,
    len: usize,
    /// (home registrar, pool, PE ID): ownership, in iteration order.
    owners: BTreeSet<(RegistrarId, u32, PoolElementId)>,
    owner_stats: HashMap<RegistrarId, OwnerStats>,
    /// (association, slot).
    associations: BTreeSet<(AssociationId, u32)>,
    deadlines: DeadlineHeap,
    /// The instant deadlines are counted from (the first one set).
    epoch: Option<Instant>,
    checksum: Checksum,
    /// Scratch buffer of the selection engine.
    scratch: Vec<u32>,
}

impl Handlespace {
    /// An empty handlespace.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of PEs.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no PE (and so no pool).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of pools.
    pub fn pool_count(&self) -> usize {
        self.pool_index.len()
    }

    fn rec(&self, slot: u32) -> &PeRecord {
        self.slab.rec(slot)
    }

    fn rec_mut(&mut self, slot: u32) -> &mut PeRecord {
        self.slab.rec_mut(slot)
    }

    fn pool_ref(&self, p: u32) -> &Pool {
        self.pools[p as usize]
            .as_ref()
            .expect("indexed pool exists")
    }

    fn handle_of(&self, slot: u32) -> PeHandle {
        PeHandle {
            slot,
            generation: self.rec(slot).generation,
        }
    }

    fn check_handle(&self, pe: PeHandle) -> Option<u32> {
        self.slab
            .get(pe.slot)
            .filter(|r| r.generation == pe.generation)
            .map(|_| pe.slot)
    }

    fn entry(&self, slot: u32) -> PeEntry<'_> {
        PeEntry {
            hs: self,
            handle: self.handle_of(slot),
            rec: self.rec(slot),
        }
    }

    // ---------------------------------------------------------------------------------------
    // Registration and removal

    /// Registers a PE in a pool, or updates it if the pool already holds its PE ID (RFC 5352
    /// §3.1): a new pool takes its policy type, transport type and transport use from this PE; an
    /// existing pool refuses a PE that differs in any of them.
    ///
    /// The PE is stored as given, including its home registrar (a registrar puts its own ID in
    /// before calling; an ENRP Handle Update carries the owner's) and, for distance-penalty
    /// policies, its distance ([`policy::set_distance`]). `association` is the association the
    /// registration came over (`None` for PEs learnt through ENRP, or in a pool user's cache).
    ///
    /// An update replaces the PE's attributes (transports, policy values, registration life,
    /// home registrar, association binding), resets its degradation counter (RFC 5356 §5.2.2) and
    /// its unreachability reports, and keeps its place in round robin order and its deadline.
    pub fn register(
        &mut self,
        pool_handle: &PoolHandle,
        element: PoolElement,
        association: Option<AssociationId>,
    ) -> Result<Registered, RegistrationError> {
        if policy::method(element.policy.policy_type()).is_none() {
            return Err(RegistrationError::UnsupportedPolicy(element.policy));
        }
        let p = match self.pool_index.get(pool_handle) {
            Some(&p) => {
                let pool = self.pool_ref(p);
                pool.check(&element)?;
                if let Some(&slot) = pool.by_id.get(&element.id) {
                    let previous_home = self.update(slot, element, association);
                    return Ok(Registered {
                        pe: self.handle_of(slot),
                        kind: RegistrationKind::Updated { previous_home },
                    });
                }
                p
            }
            None => self.create_pool(pool_handle, &element),
        };
        let slot = self.insert(p, element, association);
        Ok(Registered {
            pe: self.handle_of(slot),
            kind: RegistrationKind::New,
        })
    }

    fn create_pool(&mut self, handle: &PoolHandle, first: &PoolElement) -> u32 {
        let t = first.policy.policy_type();
        let n = t.value_count().unwrap_or(0);
        let pool = Pool {
            handle: handle.clone(),
            handle_words: checksum::handle_words(handle),
            policy: Policy::from_values(t, &[0; 4][..n]).unwrap_or_else(|| first.policy.clone()),
            transport: first.user_transport.clone(),
            transport_use: first.user_transport.transport_use(),
            selector: PoolSelector::new(t).expect("policy type checked"),
            by_id: BTreeMap::new(),
        };
        let p = match self.free_pools.pop() {
            Some(p) => {
                self.pools[p as usize] = Some(pool);
                p
            }
            None => {
                self.pools.push(Some(pool));
                (self.pools.len() - 1) as u32
            }
        };
        self.pool_index.insert(handle.clone(), p);
        p
    }

    fn insert(&mut self, p: u32, element: PoolElement, association: Option<AssociationId>) -> u32 {
        let id = element.id;
        let home = element.home_registrar;
        let slot = self.slab.insert(|generation| PeRecord {
            element,
            selection: SelectionState::default(),
            deadline: NO_DEADLINE,
            association: association.map_or(0, |a| a.0),
            pool: p,
            heap_pos: deadlines::NOT_QUEUED,
            generation,
            unreachable_reports: 0,
            timer: PeTimer::Expiry,
            has_association: association.is_some(),
        });
        let pool = self.pools[p as usize].as_mut().expect("pool exists");
        pool.by_id.insert(id, slot);
        pool.selector.insert(&mut self.slab, slot);
        let words = checksum::block_words(pool.handle_words, id);
        self.checksum.add_words(words);
        self.owners.insert((home, p, id));
        let st = self.owner_stats.entry(home).or_default();
        st.count += 1;
        st.checksum.add_words(words);
        if let Some(a) = association {
            self.associations.insert((a, slot));
        }
        self.len += 1;
        slot
    }

    /// Moves a PE's ownership entry and checksum share from one home to another.
    fn move_owner(&mut self, p: u32, id: PoolElementId, from: RegistrarId, to: RegistrarId) {
        if from == to {
            return;
        }
        let words = checksum::block_words(self.pool_ref(p).handle_words, id);
        self.owners.remove(&(from, p, id));
        self.owners.insert((to, p, id));
        self.owner_lost(from, words);
        let st = self.owner_stats.entry(to).or_default();
        st.count += 1;
        st.checksum.add_words(words);
    }

    fn owner_lost(&mut self, owner: RegistrarId, words: u64) {
        if let Some(st) = self.owner_stats.get_mut(&owner) {
            st.count -= 1;
            st.checksum.remove_words(words);
            if st.count == 0 {
                self.owner_stats.remove(&owner);
            }
        }
    }

    fn update(
        &mut self,
        slot: u32,
        element: PoolElement,
        association: Option<AssociationId>,
    ) -> RegistrarId {
        let (p, id, old_home, old_assoc) = {
            let r = self.rec(slot);
            (
                r.pool,
                r.element.id,
                r.element.home_registrar,
                r.association(),
            )
        };
        self.move_owner(p, id, old_home, element.home_registrar);
        if old_assoc != association {
            if let Some(a) = old_assoc {
                self.associations.remove(&(a, slot));
            }
            if let Some(a) = association {
                self.associations.insert((a, slot));
            }
        }
        let pool = self.pools[p as usize].as_mut().expect("pool exists");
        pool.selector
            .update(&mut self.slab, slot, move |s: &mut Slab| {
                s.rec_mut(slot).element = element;
            });
        let r = self.rec_mut(slot);
        r.association = association.map_or(0, |a| a.0);
        r.has_association = association.is_some();
        r.unreachable_reports = 0;
        old_home
    }

    /// Removes a PE; returns it.
    pub fn remove(&mut self, pe: PeHandle) -> Option<RemovedPe> {
        let slot = self.check_handle(pe)?;
        Some(self.remove_slot(slot))
    }

    /// Deregisters a PE by pool handle and PE ID (RFC 5352 §3.2); returns it, or `None` if the
    /// handlespace does not hold it. There is no ownership check (the registrar decides).
    pub fn deregister(&mut self, pool_handle: &PoolHandle, id: PoolElementId) -> Option<RemovedPe> {
        let slot = self.find_slot(pool_handle, id)?;
        Some(self.remove_slot(slot))
    }

    fn remove_slot(&mut self, slot: u32) -> RemovedPe {
        let p = self.rec(slot).pool;
        let pool = self.pools[p as usize].as_mut().expect("pool exists");
        pool.selector.remove(&mut self.slab, slot);
        if self.slab.rec(slot).heap_pos != deadlines::NOT_QUEUED {
            self.deadlines.remove(&mut self.slab, slot);
        }
        let rec = self.slab.remove(slot);
        self.len -= 1;
        let id = rec.element.id;
        pool.by_id.remove(&id);
        let words = checksum::block_words(pool.handle_words, id);
        let pool_empty = pool.by_id.is_empty();
        self.checksum.remove_words(words);
        self.owners.remove(&(rec.element.home_registrar, p, id));
        self.owner_lost(rec.element.home_registrar, words);
        if let Some(a) = rec.association() {
            self.associations.remove(&(a, slot));
        }
        let pool_handle = if pool_empty {
            let pool = self.pools[p as usize].take().expect("pool exists");
            self.pool_index.remove(&pool.handle);
            self.free_pools.push(p);
            pool.handle
        } else {
            self.pool_ref(p).handle.clone()
        };
        RemovedPe {
            pool_handle,
            association: rec.association(),
            element: rec.element,
        }
    }

    /// Removes every PE registered over an association (the association was lost, RFC 5352
    /// §3.3); returns them.
    pub fn remove_association(&mut self, association: AssociationId) -> Vec<RemovedPe> {
        let slots: Vec<u32> = self
            .associations
            .range((association, 0)..=(association, u32::MAX))
            .map(|&(_, s)| s)
            .collect();
        slots.into_iter().map(|s| self.remove_slot(s)).collect()
    }

    /// Removes every PE whose home registrar is `owner` (e.g. a peer that is dropped); returns
    /// them.
    pub fn remove_owned_by(&mut self, owner: RegistrarId) -> Vec<RemovedPe> {
        let slots: Vec<u32> = self.owned_slots(owner, None).collect();
        slots.into_iter().map(|s| self.remove_slot(s)).collect()
    }

    // ---------------------------------------------------------------------------------------
    // Lookups and iteration

    fn find_slot(&self, pool_handle: &PoolHandle, id: PoolElementId) -> Option<u32> {
        let &p = self.pool_index.get(pool_handle)?;
        self.pool_ref(p).by_id.get(&id).copied()
    }

    /// The PE with this pool handle and PE ID.
    pub fn find(&self, pool_handle: &PoolHandle, id: PoolElementId) -> Option<PeHandle> {
        self.find_slot(pool_handle, id).map(|s| self.handle_of(s))
    }

    /// A stored PE; `None` once it was removed.
    pub fn get(&self, pe: PeHandle) -> Option<PeEntry<'_>> {
        self.check_handle(pe).map(|s| self.entry(s))
    }

    /// The PE with this pool handle and PE ID.
    pub fn get_by_id(&self, pool_handle: &PoolHandle, id: PoolElementId) -> Option<PeEntry<'_>> {
        self.find_slot(pool_handle, id).map(|s| self.entry(s))
    }

    /// A pool.
    pub fn pool(&self, pool_handle: &PoolHandle) -> Option<PoolView<'_>> {
        let &p = self.pool_index.get(pool_handle)?;
        Some(PoolView {
            hs: self,
            pool: self.pool_ref(p),
        })
    }

    /// Every pool, in iteration order (not sorted by handle).
    pub fn pools(&self) -> impl Iterator<Item = PoolView<'_>> + '_ {
        self.pools
            .iter()
            .flatten()
            .map(move |pool| PoolView { hs: self, pool })
    }

    /// Every PE, pool by pool and by PE ID within a pool.
    pub fn iter(&self) -> impl Iterator<Item = PeEntry<'_>> + '_ {
        self.iter_after(None)
    }

    /// Every PE after `cursor` (all of them for `None`), in the order of [`Handlespace::iter`].
    pub fn iter_after(&self, cursor: Option<Cursor>) -> impl Iterator<Item = PeEntry<'_>> + '_ {
        let (first_pool, after_id) = match cursor {
            None => (0, None),
            Some(c) => (c.pool as usize, Some(c.id)),
        };
        self.pools
            .iter()
            .enumerate()
            .skip(first_pool)
            .filter_map(|(i, p)| p.as_ref().map(|p| (i, p)))
            .flat_map(move |(i, pool)| {
                let lower = match after_id {
                    Some(id) if i == first_pool => Bound::Excluded(id),
                    _ => Bound::Unbounded,
                };
                pool.by_id
                    .range((lower, Bound::Unbounded))
                    .map(move |(_, &s)| self.entry(s))
            })
    }

    fn owned_slots(
        &self,
        owner: RegistrarId,
        cursor: Option<Cursor>,
    ) -> impl Iterator<Item = u32> + '_ {
        let lower = match cursor {
            None => Bound::Included((owner, 0, PoolElementId(0))),
            Some(c) => Bound::Excluded((owner, c.pool, c.id)),
        };
        self.owners
            .range((
                lower,
                Bound::Included((owner, u32::MAX, PoolElementId(u32::MAX))),
            ))
            .map(move |&(_, p, id)| self.pool_ref(p).by_id[&id])
    }

    /// The PEs whose home registrar is `owner`, pool by pool and by PE ID.
    pub fn owned_by(&self, owner: RegistrarId) -> impl Iterator<Item = PeEntry<'_>> + '_ {
        self.owned_by_after(owner, None)
    }

    /// The PEs owned by `owner` after `cursor`, in the order of [`Handlespace::owned_by`] (a
    /// Handle Table Response with the W flag, sent in parts).
    pub fn owned_by_after(
        &self,
        owner: RegistrarId,
        cursor: Option<Cursor>,
    ) -> impl Iterator<Item = PeEntry<'_>> + '_ {
        self.owned_slots(owner, cursor).map(move |s| self.entry(s))
    }

    /// How many PEs `owner` is the home registrar of.
    pub fn owned_count(&self, owner: RegistrarId) -> usize {
        self.owner_stats.get(&owner).map_or(0, |s| s.count)
    }

    /// Every home registrar with its PE count and its checksum.
    pub fn owners(&self) -> impl Iterator<Item = (RegistrarId, usize, Checksum)> + '_ {
        self.owner_stats
            .iter()
            .map(|(&o, s)| (o, s.count, s.checksum))
    }

    /// The PEs registered over an association.
    pub fn association_pes(
        &self,
        association: AssociationId,
    ) -> impl Iterator<Item = PeEntry<'_>> + '_ {
        self.associations
            .range((association, 0)..=(association, u32::MAX))
            .map(move |&(_, s)| self.entry(s))
    }

    // ---------------------------------------------------------------------------------------
    // Selection

    /// Handle resolution: selects up to `request.items` PEs of a pool by its policy (see
    /// [`crate::policy`]) and appends them to `out` in order; returns how many. `rng` drives the
    /// random policies, so a seeded generator gives reproducible selections.
    pub fn select<R: Rng + ?Sized>(
        &mut self,
        pool_handle: &PoolHandle,
        request: SelectionRequest,
        rng: &mut R,
        out: &mut Vec<PeHandle>,
    ) -> Result<usize, UnknownPoolHandle> {
        let &p = self.pool_index.get(pool_handle).ok_or(UnknownPoolHandle)?;
        let pool = self.pools[p as usize].as_mut().expect("pool exists");
        let mut picked = std::mem::take(&mut self.scratch);
        picked.clear();
        let n = pool
            .selector
            .select(&mut self.slab, request, rng, &mut picked);
        out.extend(picked.iter().map(|&s| self.handle_of(s)));
        self.scratch = picked;
        Ok(n)
    }

    // ---------------------------------------------------------------------------------------
    // Ownership (takeover)

    /// Changes a PE's home registrar (a Keep-Alive with the H flag, a takeover suggestion);
    /// returns the previous one.
    pub fn set_home(&mut self, pe: PeHandle, home: RegistrarId) -> Option<RegistrarId> {
        let slot = self.check_handle(pe)?;
        let (p, id, old) = {
            let r = self.rec(slot);
            (r.pool, r.element.id, r.element.home_registrar)
        };
        self.move_owner(p, id, old, home);
        self.rec_mut(slot).element.home_registrar = home;
        Some(old)
    }

    /// Binds a PE to an association (or to none): a taken-over PE to the association its new
    /// home opened to it. Returns `false` if the PE is gone.
    pub fn bind_association(&mut self, pe: PeHandle, association: Option<AssociationId>) -> bool {
        let Some(slot) = self.check_handle(pe) else {
            return false;
        };
        let old = self.rec(slot).association();
        if old != association {
            if let Some(a) = old {
                self.associations.remove(&(a, slot));
            }
            if let Some(a) = association {
                self.associations.insert((a, slot));
            }
            let r = self.rec_mut(slot);
            r.association = association.map_or(0, |a| a.0);
            r.has_association = association.is_some();
        }
        true
    }

    /// Takeover (RFC 5353 §3.5): makes `to` the home registrar of every PE owned by `from`;
    /// returns those PEs (to send each an Endpoint Keep-Alive with the H flag).
    pub fn rehome(&mut self, from: RegistrarId, to: RegistrarId) -> Vec<PeHandle> {
        let slots: Vec<u32> = self.owned_slots(from, None).collect();
        if from != to {
            for &s in &slots {
                let (p, id) = {
                    let r = self.rec(s);
                    (r.pool, r.element.id)
                };
                self.move_owner(p, id, from, to);
                self.rec_mut(s).element.home_registrar = to;
            }
        }
        slots.into_iter().map(|s| self.handle_of(s)).collect()
    }

    // ---------------------------------------------------------------------------------------
    // Deadlines

    /// Nanoseconds from the epoch (set by the first deadline), saturating at ±292 years.
    fn deadline_ns(&mut self, at: Instant) -> i64 {
        let epoch = *self.epoch.get_or_insert(at);
        match at.checked_duration_since(epoch) {
            Some(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            None => i64::try_from((epoch - at).as_nanos()).map_or(NO_DEADLINE + 1, |n| -n),
        }
    }

    fn deadline_at(&self, ns: i64) -> Option<Instant> {
        if ns == NO_DEADLINE {
            return None;
        }
        let epoch = self.epoch.expect("a deadline was set");
        Some(if ns >= 0 {
            epoch + Duration::from_nanos(ns as u64)
        } else {
            epoch - Duration::from_nanos(ns.unsigned_abs())
        })
    }

    /// Sets (or, with `None`, clears) a PE's deadline; returns `false` if the PE is gone.
    pub fn set_deadline(&mut self, pe: PeHandle, deadline: Option<(Instant, PeTimer)>) -> bool {
        let Some(slot) = self.check_handle(pe) else {
            return false;
        };
        let queued = self.rec(slot).heap_pos != deadlines::NOT_QUEUED;
        match deadline {
            Some((at, timer)) => {
                let ns = self.deadline_ns(at);
                let r = self.rec_mut(slot);
                r.deadline = ns;
                r.timer = timer;
                if queued {
                    self.deadlines.changed(&mut self.slab, slot);
                } else {
                    self.deadlines.push(&mut self.slab, slot);
                }
            }
            None => {
                if queued {
                    self.deadlines.remove(&mut self.slab, slot);
                }
                self.rec_mut(slot).deadline = NO_DEADLINE;
            }
        }
        true
    }

    /// The earliest deadline of any PE.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadline_at(self.rec(self.deadlines.first()?).deadline)
    }

    /// Takes the earliest deadline that is due at `now`: clears it and returns the PE and what the
    /// deadline was for. The PE stays (the caller removes it, or sets its next deadline). PEs
    /// with equal deadlines come in no particular order.
    pub fn pop_expired(&mut self, now: Instant) -> Option<(PeHandle, PeTimer)> {
        let slot = self.deadlines.first()?;
        if self.deadline_at(self.rec(slot).deadline)? > now {
            return None;
        }
        self.deadlines.remove(&mut self.slab, slot);
        let r = self.rec_mut(slot);
        r.deadline = NO_DEADLINE;
        let timer = r.timer;
        Some((self.handle_of(slot), timer))
    }

    // ---------------------------------------------------------------------------------------
    // Unreachability reports

    /// Counts an Endpoint Unreachable report for a PE (RFC 5352 §3.5); returns the count since
    /// its last (re-)registration, for the registrar to compare with MAX-BAD-PE-REPORT.
    pub fn report_unreachable(&mut self, pe: PeHandle) -> Option<u32> {
        let slot = self.check_handle(pe)?;
        let r = self.rec_mut(slot);
        r.unreachable_reports = r.unreachable_reports.saturating_add(1);
        Some(u32::from(r.unreachable_reports))
    }

    // ---------------------------------------------------------------------------------------
    // Checksums

    /// The checksum over every PE in the handlespace.
    pub fn checksum(&self) -> Checksum {
        self.checksum
    }

    /// The checksum over the PEs whose home registrar is `owner` (RFC 5353 §3.6.1: a
    /// registrar's own, `pe_checksum_pr0`, sent in its Presence; a peer's, compared with the
    /// peer's Presence).
    pub fn owner_checksum(&self, owner: RegistrarId) -> Checksum {
        self.owner_stats
            .get(&owner)
            .map_or(Checksum::EMPTY, |s| s.checksum)
    }
}

/// A stored PE, borrowed from the handlespace.
#[derive(Clone, Copy, Debug)]
pub struct PeEntry<'a> {
    hs: &'a Handlespace,
    handle: PeHandle,
    rec: &'a PeRecord,
}

impl<'a> PeEntry<'a> {
    /// The PE's handle.
    pub fn handle(&self) -> PeHandle {
        self.handle
    }

    /// Its pool's handle.
    pub fn pool_handle(&self) -> &'a PoolHandle {
        &self.hs.pool_ref(self.rec.pool).handle
    }

    /// The PE as registered (with its home registrar, registration life, transports and policy).
    pub fn element(&self) -> &'a PoolElement {
        &self.rec.element
    }

    /// The PE ID.
    pub fn id(&self) -> PoolElementId {
        self.rec.element.id
    }

    /// The home registrar.
    pub fn home_registrar(&self) -> RegistrarId {
        self.rec.element.home_registrar
    }

    /// The association it registered over.
    pub fn association(&self) -> Option<AssociationId> {
        self.rec.association()
    }

    /// Its deadline and what it is for.
    pub fn deadline(&self) -> Option<(Instant, PeTimer)> {
        Some((self.hs.deadline_at(self.rec.deadline)?, self.rec.timer))
    }

    /// Endpoint Unreachable reports since its last (re-)registration.
    pub fn unreachable_reports(&self) -> u32 {
        u32::from(self.rec.unreachable_reports)
    }

    /// Its selection state (sequence number, degradation counter, WRR round).
    pub fn selection(&self) -> &'a SelectionState {
        &self.rec.selection
    }

    /// The position of this PE in the iteration orders, to resume after it.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            pool: self.rec.pool,
            id: self.rec.element.id,
        }
    }
}

/// A pool, borrowed from the handlespace.
#[derive(Clone, Copy, Debug)]
pub struct PoolView<'a> {
    hs: &'a Handlespace,
    pool: &'a Pool,
}

impl<'a> PoolView<'a> {
    /// The pool handle.
    pub fn handle(&self) -> &'a PoolHandle {
        &self.pool.handle
    }

    /// The pool's policy type (set by its first PE).
    pub fn policy_type(&self) -> PolicyType {
        self.pool.selector.policy_type()
    }

    /// The pool's user transport type (set by its first PE).
    pub fn transport_type(&self) -> ParamType {
        self.pool.transport.param_type()
    }

    /// The pool's transport use (set by its first PE).
    pub fn transport_use(&self) -> TransportUse {
        self.pool.transport_use
    }

    /// The number of PEs.
    pub fn len(&self) -> usize {
        self.pool.by_id.len()
    }

    /// Whether the pool is empty (never true for a pool in the handlespace).
    pub fn is_empty(&self) -> bool {
        self.pool.by_id.is_empty()
    }

    /// The PEs by PE ID.
    pub fn elements(&self) -> impl Iterator<Item = PeEntry<'a>> + 'a {
        let hs = self.hs;
        self.pool.by_id.values().map(move |&s| hs.entry(s))
    }

    /// For sorted policies, the PEs in the order the next selection would take them; `None`
    /// for weighted (random) policies.
    pub fn selection_order(&self) -> Option<impl Iterator<Item = PeEntry<'a>> + 'a> {
        let hs = self.hs;
        self.pool
            .selector
            .order()
            .map(move |it| it.map(move |s| hs.entry(s)))
    }
}
