//! The revocation stream's hub (`GET /revocations`): one per instance, it reads what the
//! revocation feed gained and hands it to every open stream.
//!
//! - **The hub** ([`RevocationHub::run`]) keeps the `seq` it has read up to and, while anyone
//!   follows, reads the feed after it: at once when woken (this instance revoked a key: see
//!   `KeyService::forget`; another instance did: a PostgreSQL notification) and every 250 ms
//!   otherwise (the `admin` command line writing the same SQLite file; a missed wake-up). What
//!   it reads goes out on a `tokio::sync::broadcast` channel as a batch saying "every entry in
//!   `(after, upto]`" (`seq` order is commit order, so such a batch is complete); every move of
//!   its position is such a batch, an empty one when it jumps to the head. While nobody follows
//!   it reads nothing, and forgets where it was.
//! - **A follower** ([`Follower`], one per stream) subscribes first, then reads its backlog from
//!   the database (everything after the client's position, a page at a time), then takes
//!   batches from the channel, skipping what it already sent. A batch that starts after what
//!   it sent (the hub was idle, or the follower fell behind the channel) is a gap, filled from
//!   the database before going on ([`crate::domain::revocation_stream::fit`]). So the channel
//!   only saves database reads; what a client is sent never depends on it.
//! - **Resets**: a follower whose position is not covered by the feed (pruned, or beyond the
//!   head) sends `reset` and goes on from the present. So does every follower once the hub can
//!   read again after it could not vouch for the last second: its reads failed for a second or
//!   more, or (PostgreSQL) the connection that hears other instances was lost.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch, Notify};

use crate::domain::revocation_stream::{fit, resume, Fit, ResetCause};
use crate::domain::FeedEntry;
use crate::store::{Store, StoreResult};
use crate::telemetry::Sampled;

/// Feed entries read at a time.
pub const PAGE: u32 = 1000;
/// How often the hub reads the feed while anyone follows, besides being woken.
pub const POLL_EVERY: Duration = Duration::from_millis(250);
/// Reads failing for this long break API.md's "within one second": the clients are reset once
/// the hub reads again.
const UNPROVEN_AFTER: Duration = Duration::from_secs(1);
/// Batches a follower may fall behind before it reads from the database instead.
const CHANNEL: usize = 256;

/// What the hub broadcasts.
#[derive(Debug)]
enum Update {
    /// Every feed entry in `(after, upto]`; none when the hub has just moved to `upto` without
    /// reading what lies before (it was idle): a follower that has not been sent that far
    /// learns there is a gap at once, not at the next revocation.
    Batch {
        after: i64,
        upto: i64,
        entries: Arc<[FeedEntry]>,
    },
    /// Every follower resets to `head`; `epoch` numbers the resets.
    Reset { head: i64, epoch: u64 },
}

/// What a stream sends next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamItem {
    Revoked(FeedEntry),
    /// Drop whatever was learnt from the stream; it goes on after `head`.
    Reset {
        head: i64,
        cause: ResetCause,
    },
}

impl StreamItem {
    /// Cuts `items` after the revocation of the key with id `key_id` (the key the stream was
    /// opened with), which is kept: the stream's last event. Whether it was found.
    pub fn until_revoked(items: &mut Vec<StreamItem>, key_id: uuid::Uuid) -> bool {
        let own = items
            .iter()
            .position(|item| matches!(item, StreamItem::Revoked(entry) if entry.key_id == key_id));
        match own {
            Some(at) => {
                items.truncate(at + 1);
                true
            }
            None => false,
        }
    }

    /// Whether `items` hold a reset: what the client learnt before is dropped, and so is what
    /// the stream knows of its own key's revocations.
    pub fn any_reset(items: &[StreamItem]) -> bool {
        items.iter().any(|item| matches!(item, StreamItem::Reset { .. }))
    }
}

pub struct RevocationHub {
    store: Arc<dyn Store>,
    updates: broadcast::Sender<Arc<Update>>,
    /// Told of every revocation this instance makes or hears of.
    wake: Arc<Notify>,
    followers: AtomicUsize,
    /// Resets so far.
    epoch: AtomicU64,
    /// PostgreSQL: whether the connection that hears other instances is up (see
    /// [`RevocationHub::listener_lost`]).
    listening: AtomicBool,
    /// A reset is due at the next successful read.
    unproven: AtomicBool,
    closed: watch::Sender<bool>,
}

impl RevocationHub {
    /// A hub reading `store`, woken through `wake` (`KeyService::revocation_signal`).
    pub fn new(store: Arc<dyn Store>, wake: Arc<Notify>) -> Arc<Self> {
        let (updates, _) = broadcast::channel(CHANNEL);
        Arc::new(Self {
            store,
            updates,
            wake,
            followers: AtomicUsize::new(0),
            epoch: AtomicU64::new(0),
            listening: AtomicBool::new(true),
            unproven: AtomicBool::new(false),
            closed: watch::Sender::new(false),
        })
    }

    /// Something was revoked: read the feed now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// PostgreSQL: the connection that hears other instances is lost (or cannot be made). The
    /// followers get one reset for the outage, once the hub reads again; told again while it
    /// lasts, it changes nothing.
    pub fn listener_lost(&self) {
        if self.listening.swap(false, Ordering::SeqCst) {
            self.unproven.store(true, Ordering::SeqCst);
            self.wake();
        }
    }

    /// PostgreSQL: listening again.
    pub fn listener_back(&self) {
        self.listening.store(true, Ordering::SeqCst);
    }

    /// Shutdown: every stream ends (clients reconnect, to another instance, with their
    /// position), and so does [`RevocationHub::run`].
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Open streams.
    pub fn followers(&self) -> usize {
        self.followers.load(Ordering::SeqCst)
    }

    /// Follows the feed after `after` (the client's position), or from the present. The items
    /// to send first come back with the follower: the backlog's first page, or a reset. An
    /// error here is the client's 503, before anything was streamed.
    pub async fn follow(self: &Arc<Self>, after: Option<i64>) -> StoreResult<(Follower, Vec<StreamItem>)> {
        // Subscribed before reading: whatever the hub reads from now on reaches this follower,
        // and whatever it read before is in the database.
        let mut follower = Follower {
            hub: self.clone(),
            updates: self.updates.subscribe(),
            closed: self.closed.subscribe(),
            sent: 0,
            epoch: self.epoch.load(Ordering::SeqCst),
            catching_up: false,
        };
        self.followers.fetch_add(1, Ordering::SeqCst);
        self.wake();
        match after {
            None => {
                follower.sent = self.store.feed_bounds().await?.head;
                Ok((follower, Vec::new()))
            }
            Some(after) => {
                follower.sent = after;
                let first = follower.catch_up().await?;
                Ok((follower, first))
            }
        }
    }

    /// Reads the feed for the followers until [`RevocationHub::close`].
    pub async fn run(self: Arc<Self>) {
        let mut closed = self.closed.subscribe();
        let mut reader = Reader::default();
        loop {
            if self.followers() == 0 {
                // Nobody to tell: forget where we were (a follower reads its own backlog) and
                // any reset that was due.
                reader = Reader::default();
                self.unproven.store(false, Ordering::SeqCst);
                tokio::select! {
                    _ = self.wake.notified() => continue,
                    _ = closed.wait_for(|c| *c) => return,
                }
            }
            let more = self.read(&mut reader).await;
            if more {
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL_EVERY) => {}
                _ = closed.wait_for(|c| *c) => return,
            }
        }
    }

    /// One read of the feed; whether there is more to read at once.
    async fn read(&self, reader: &mut Reader) -> bool {
        let unproven = self.unproven.swap(false, Ordering::SeqCst)
            || reader
                .failing_since
                .is_some_and(|t| t.elapsed() >= UNPROVEN_AFTER);
        match self.read_once(reader, unproven).await {
            Ok(more) => {
                reader.failing_since = None;
                more
            }
            Err(e) => {
                if unproven {
                    self.unproven.store(true, Ordering::SeqCst);
                }
                reader.failing_since.get_or_insert_with(Instant::now);
                static FAILURES: Sampled = Sampled::new(Duration::from_secs(10));
                if let Some(suppressed) = FAILURES.admit() {
                    tracing::warn!(error = %e, suppressed, "cannot read the revocation feed for the revocation streams");
                }
                false
            }
        }
    }

    async fn read_once(&self, reader: &mut Reader, unproven: bool) -> StoreResult<bool> {
        let after = match reader.head {
            Some(head) if !unproven => head,
            _ => {
                let head = self.store.revocation_feed_head().await?;
                let update = if unproven {
                    let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
                    tracing::info!(
                        head,
                        epoch,
                        "revocation streams reset: the service cannot vouch for the last second"
                    );
                    Update::Reset { head, epoch }
                } else {
                    Update::Batch {
                        after: head,
                        upto: head,
                        entries: Arc::new([]),
                    }
                };
                // Every move of the hub's position is told: each follower checks its own
                // against it (a follower behind it reads the gap from the database at once).
                let _ = self.updates.send(Arc::new(update));
                reader.head = Some(head);
                head
            }
        };
        let entries = self.store.feed_after(after, PAGE).await?;
        let full = entries.len() == PAGE as usize;
        if let Some(upto) = entries.last().map(|e| e.seq) {
            reader.head = Some(upto);
            let _ = self.updates.send(Arc::new(Update::Batch {
                after,
                upto,
                entries: entries.into(),
            }));
        }
        Ok(full)
    }
}

/// Where the hub has read up to.
#[derive(Default)]
struct Reader {
    /// `None`: not following (read the head first).
    head: Option<i64>,
    /// Since when reads fail.
    failing_since: Option<Instant>,
}

/// One stream's view of the feed (see the module's documentation).
pub struct Follower {
    hub: Arc<RevocationHub>,
    updates: broadcast::Receiver<Arc<Update>>,
    closed: watch::Receiver<bool>,
    /// Everything up to this `seq` has been sent (or skipped by a reset).
    sent: i64,
    /// The last reset this follower sent or skipped.
    epoch: u64,
    /// The next items come from the database, not the channel.
    catching_up: bool,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.hub.followers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Follower {
    /// Everything up to this `seq` has been sent (or skipped by a reset).
    pub fn position(&self) -> i64 {
        self.sent
    }

    /// Whether the key with this digest is stored and not revoked (read from the database:
    /// after a reset, the feed cannot say whether it was revoked meanwhile).
    pub async fn is_live(&self, digest: &crate::domain::KeyDigest) -> StoreResult<bool> {
        Ok(self
            .hub
            .store
            .find_key(digest)
            .await?
            .is_some_and(|(record, _)| record.revoked.is_none()))
    }

    /// The next items to send, waiting until there are some; `None` once the hub closes
    /// (shutdown). An error is a failed database read while catching up.
    pub async fn next(&mut self) -> StoreResult<Option<Vec<StreamItem>>> {
        loop {
            if self.catching_up {
                let items = self.catch_up().await?;
                if items.is_empty() {
                    continue;
                }
                return Ok(Some(items));
            }
            let update = tokio::select! {
                biased;
                _ = self.closed.wait_for(|c| *c) => return Ok(None),
                update = self.updates.recv() => update,
            };
            let update = match update {
                Ok(update) => update,
                Err(RecvError::Lagged(_)) => {
                    // Some batches were dropped for this follower: the database has them. A
                    // reset among them is sent now (from a head read now).
                    let epoch = self.hub.epoch.load(Ordering::SeqCst);
                    if epoch != self.epoch {
                        self.epoch = epoch;
                        let head = self.hub.store.feed_bounds().await?.head;
                        return Ok(Some(vec![self.reset(head, ResetCause::Unproven)]));
                    }
                    self.catching_up = true;
                    continue;
                }
                Err(RecvError::Closed) => return Ok(None),
            };
            match &*update {
                Update::Batch { after, upto, entries } => match fit(self.sent, *after, *upto) {
                    Fit::Seen => {}
                    Fit::Gap => self.catching_up = true,
                    Fit::Follows => {
                        let sent = self.sent;
                        self.sent = *upto;
                        let items = entries
                            .iter()
                            .filter(|e| e.seq > sent)
                            .cloned()
                            .map(StreamItem::Revoked)
                            .collect();
                        return Ok(Some(items));
                    }
                },
                Update::Reset { head, epoch } => {
                    if *epoch > self.epoch {
                        self.epoch = *epoch;
                        return Ok(Some(vec![self.reset(*head, ResetCause::Unproven)]));
                    }
                }
            }
        }
    }

    /// A reset: everything up to `head` counts as sent.
    fn reset(&mut self, head: i64, cause: ResetCause) -> StreamItem {
        self.sent = self.sent.max(head);
        self.catching_up = false;
        StreamItem::Reset {
            head: self.sent,
            cause,
        }
    }

    /// One page of what follows `sent`, from the database, or a reset when the feed no longer
    /// covers it. The bounds are read after the page (see [`resume`]).
    async fn catch_up(&mut self) -> StoreResult<Vec<StreamItem>> {
        let store = &self.hub.store;
        let page = store.feed_after(self.sent, PAGE).await?;
        let bounds = store.feed_bounds().await?;
        if let Err(cause) = resume(self.sent, bounds) {
            // The head may be behind `sent` only when `sent` is beyond it (never given here).
            self.sent = bounds.head;
            return Ok(vec![self.reset(bounds.head, cause)]);
        }
        self.catching_up = page.len() == PAGE as usize;
        if let Some(last) = page.last() {
            self.sent = last.seq;
        }
        Ok(page.into_iter().map(StreamItem::Revoked).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use uuid::Uuid;

    use super::*;
    use crate::domain::{AccessKey, KeyPolicy, OnLimit, RevocationReason, Role, Timestamp, User, Username};
    use crate::domain::{EventKind, NewEvent};
    use crate::store::sqlite::SqliteStore;
    use crate::store::{Cause, NewKey};

    fn test_event() -> NewEvent {
        NewEvent::new(
            EventKind::SignedIn,
            Timestamp::from_millis(1_800_000_000_000),
            None,
        )
    }

    const SOON: Duration = Duration::from_secs(2);

    fn revoked(seq: i64, key_id: Uuid) -> StreamItem {
        StreamItem::Revoked(FeedEntry {
            seq,
            key_id,
            user_id: Uuid::nil(),
            reason: "admin".into(),
            at: Timestamp::from_millis(1_800_000_000_000),
        })
    }

    #[test]
    fn a_stream_is_cut_after_its_own_keys_revocation() {
        let own = Uuid::new_v4();
        let (a, b) = (revoked(1, Uuid::new_v4()), revoked(3, Uuid::new_v4()));
        let mut items = vec![a.clone(), revoked(2, own), b.clone()];
        assert!(StreamItem::until_revoked(&mut items, own));
        assert_eq!(items, vec![a.clone(), revoked(2, own)]);
        let mut others = vec![a.clone(), b.clone()];
        assert!(!StreamItem::until_revoked(&mut others, own));
        assert_eq!(others, vec![a.clone(), b]);
        assert!(!StreamItem::any_reset(&others));
        let reset = StreamItem::Reset {
            head: 9,
            cause: ResetCause::Pruned,
        };
        assert!(StreamItem::any_reset(&[a, reset]));
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Arc<dyn Store>,
        user: User,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("kb.db")).await.unwrap());
        let user = User {
            id: Uuid::new_v4(),
            name: Username::from_trusted("bill".into()),
            role: Role::User,
            created: Timestamp::from_millis(1_800_000_000_000),
        };
        store
            .create_user(&user, "$argon2id$x", None, &test_event())
            .await
            .unwrap();
        Fixture {
            _dir: dir,
            store,
            user,
        }
    }

    impl Fixture {
        /// Issues and revokes `n` keys, one transaction each; their ids in order.
        async fn revoke(&self, n: usize) -> Vec<Uuid> {
            let policy = KeyPolicy {
                lifetime: Duration::from_secs(86_400),
                idle_timeout: None,
                max_per_user: 100_000,
                on_limit: OnLimit::Evict,
            };
            let mut ids = Vec::new();
            for _ in 0..n {
                let key = NewKey {
                    id: Uuid::new_v4(),
                    user_id: self.user.id,
                    digest: AccessKey::generate().digest(),
                    created: Timestamp::from_millis(1_800_000_000_000),
                    created_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                };
                let verified = crate::store::VerifiedHash {
                    verified: "$argon2id$x",
                    upgrade: None,
                };
                self.store
                    .issue_key(&key, &verified, &policy, &test_event())
                    .await
                    .unwrap();
                self.store
                    .revoke_key(
                        self.user.id,
                        key.id,
                        RevocationReason::SignedOut,
                        &Cause::new(Timestamp::from_millis(1_800_000_000_001), None),
                    )
                    .await
                    .unwrap()
                    .unwrap();
                ids.push(key.id);
            }
            ids
        }
    }

    async fn next(follower: &mut Follower) -> Vec<StreamItem> {
        tokio::time::timeout(SOON, follower.next())
            .await
            .expect("items in time")
            .unwrap()
            .expect("not closed")
    }

    fn revoked_ids(items: &[StreamItem]) -> Vec<Uuid> {
        items
            .iter()
            .map(|item| match item {
                StreamItem::Revoked(e) => e.key_id,
                StreamItem::Reset { .. } => panic!("a reset: {items:?}"),
            })
            .collect()
    }

    /// The hub was idle and moves straight to the head, past a revocation that committed after
    /// the follower read its starting point: the follower reads it from the database at once.
    #[tokio::test]
    async fn a_follower_behind_the_hub_reads_the_gap_at_once() {
        let f = fixture().await;
        let hub = RevocationHub::new(f.store.clone(), Arc::new(Notify::new()));
        let (mut follower, first) = hub.follow(None).await.unwrap();
        assert!(first.is_empty());
        let ids = f.revoke(1).await;
        tokio::spawn(hub.clone().run());
        assert_eq!(revoked_ids(&next(&mut follower).await), ids);
        hub.close();
    }

    /// A follower that falls behind the channel (here: 300 batches it did not read, for room
    /// for 256) is sent what it missed from the database: every entry once, in order, no reset.
    #[tokio::test]
    async fn a_lagging_follower_catches_up_from_the_database() {
        let f = fixture().await;
        let hub = RevocationHub::new(f.store.clone(), Arc::new(Notify::new()));
        let (mut follower, _) = hub.follow(Some(0)).await.unwrap();
        let ids = f.revoke(300).await;
        let entries = f.store.feed_after(0, 1000).await.unwrap();
        let mut after = 0;
        for entry in entries {
            let upto = entry.seq;
            let _ = hub.updates.send(Arc::new(Update::Batch {
                after,
                upto,
                entries: Arc::new([entry]),
            }));
            after = upto;
        }
        let mut got = Vec::new();
        while got.len() < ids.len() {
            got.extend(revoked_ids(&next(&mut follower).await));
        }
        assert_eq!(got, ids);
        // What is left in the channel was sent already.
        assert!(tokio::time::timeout(Duration::from_millis(100), follower.next())
            .await
            .is_err());
    }

    /// A lost listener resets every follower once, when the hub reads again; telling it again
    /// while it is still lost changes nothing; the next outage resets again.
    #[tokio::test]
    async fn a_lost_listener_resets_once_per_outage() {
        let f = fixture().await;
        let hub = RevocationHub::new(f.store.clone(), Arc::new(Notify::new()));
        tokio::spawn(hub.clone().run());
        let (mut follower, _) = hub.follow(None).await.unwrap();
        let head = f.revoke(2).await;
        let mut got = Vec::new();
        while got.len() < 2 {
            // One batch or two: the hub may read between the two transactions.
            got.extend(revoked_ids(&next(&mut follower).await));
        }
        assert_eq!(got, head);
        hub.listener_lost();
        match next(&mut follower).await.as_slice() {
            [StreamItem::Reset {
                head,
                cause: ResetCause::Unproven,
            }] => assert_eq!(*head, 2),
            other => panic!("{other:?}"),
        }
        hub.listener_lost();
        let ids = f.revoke(1).await;
        hub.wake();
        assert_eq!(revoked_ids(&next(&mut follower).await), ids, "no second reset");
        hub.listener_back();
        hub.listener_lost();
        assert!(matches!(
            next(&mut follower).await.as_slice(),
            [StreamItem::Reset { head: 3, .. }]
        ));
        // Shutdown ends every follower.
        hub.close();
        assert!(tokio::time::timeout(SOON, follower.next())
            .await
            .unwrap()
            .unwrap()
            .is_none());
    }

    /// A follower opened before the hub is told nothing reads its backlog in pages, then follows.
    #[tokio::test]
    async fn a_long_backlog_comes_in_pages() {
        let f = fixture().await;
        let hub = RevocationHub::new(f.store.clone(), Arc::new(Notify::new()));
        tokio::spawn(hub.clone().run());
        let ids = f.revoke(PAGE as usize + 5).await;
        let (mut follower, first) = hub.follow(Some(0)).await.unwrap();
        assert_eq!(first.len(), PAGE as usize);
        let mut got = revoked_ids(&first);
        got.extend(revoked_ids(&next(&mut follower).await));
        assert_eq!(got, ids);
        let more = f.revoke(1).await;
        hub.wake();
        assert_eq!(revoked_ids(&next(&mut follower).await), more);
        assert_eq!(hub.followers(), 1);
        drop(follower);
        assert_eq!(hub.followers(), 0);
        hub.close();
    }
}
