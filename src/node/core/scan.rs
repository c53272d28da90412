//! `GET_ALL`: one page of the cluster's pairs, gathered by the node a client
//! asked (the coordinator) from the partitions' primaries.
//!
//! A page starts at a [`Cursor`] (a partition, and a key in it to read
//! after) and walks the partitions in order, asking each primary for a page
//! of its own (`Scan`/`ScanResponse`) until the client's page is full: its
//! `limit` of pairs, or [`PAGE_BYTES`] of keys and values. The reply carries
//! the cursor where it stopped. The coordinator never holds more than the
//! page and a few partitions' pages fetched ahead ([`SCAN_WINDOW`]), however
//! big the cluster: collecting everything and sorting it, as this module did
//! before, let one client with a few hundred `GET_ALL`s take gigabytes.
//!
//! Fetching ahead is the trade-off between memory and latency: most
//! partitions of a small cluster are empty or nearly so, and asking them
//! one at a time would cost a round trip each. A node coordinates at most
//! [`MAX_SCANS`] pages at once and refuses more with `busy` at once, so the
//! memory a node spends on `GET_ALL` has a bound that does not depend on
//! how many clients ask.

use super::{ClientId, Node};
use crate::error::Error;
use crate::node::conditional::{lock_name, LockRecord, LockState, LOCK_PREFIX};
use crate::node::message::{Address, Message, RequestId, ScanPage};
use crate::node::protocol::{
    Cursor, Entry, LockEntry, Response, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, PAGE_BYTES,
};
use crate::view::{node_name, Epoch, NodeId, PartitionId, Time};
use std::collections::BTreeMap;

/// Most `GET_ALL` pages a node coordinates at once.
pub const MAX_SCANS: usize = 8;
/// Partitions a page asks at once: the one it is reading and the next few.
pub const SCAN_WINDOW: u32 = 4;

/// The most pairs this node's store reads for one client page (four pages
/// of [`crate::node::store::MAX_EXAMINED`]): a page with a prefix that
/// matches little goes back short, with its cursor, rather than read every
/// partition this node leads in one pass of its thread. Only this node's
/// own reads count; other primaries' pages come by message.
pub const MAX_SCAN_EXAMINED: usize = 4 * crate::node::store::MAX_EXAMINED;

/// One `GET_ALL` page being gathered.
#[derive(Debug)]
pub(super) struct Scan {
    client: ClientId,
    id: Option<serde_json::Value>,
    prefix: Option<String>,
    limit: usize,
    deadline: Time,
    /// Partitions in the cluster.
    partitions: u32,
    /// Where the page goes on: everything before it is in `page`.
    at: Cursor,
    /// The page so far, and the bytes of its keys and values.
    page: Vec<(String, String)>,
    bytes: usize,
    /// Per-partition pages asked for or fetched ahead: `at.partition` and up
    /// to [`SCAN_WINDOW`] - 1 after it.
    fetches: BTreeMap<PartitionId, Fetch>,
    /// Pairs this node's store read for the page (see
    /// [`MAX_SCAN_EXAMINED`]).
    examined: usize,
    /// True once a partition's page has been read into this one: the
    /// cursor has moved, so a reply cut short by the budget goes on.
    progressed: bool,
}

impl Scan {
    fn full(&self) -> bool {
        self.page.len() >= self.limit || self.bytes >= PAGE_BYTES
    }
}

/// One partition's page, asked of its primary.
#[derive(Debug)]
struct Fetch {
    /// The key to read after.
    after: Option<String>,
    /// The request in flight: its id, the node asked, and when.
    asked: Option<(RequestId, NodeId, Time)>,
    /// Do not ask before this (after a failure).
    retry_at: Time,
    /// The page, once it came.
    got: Option<ScanPage>,
    /// Why the last ask failed, if it did.
    error: Option<Error>,
}

impl Fetch {
    fn new(after: Option<String>, now: Time) -> Self {
        Fetch {
            after,
            asked: None,
            retry_at: now,
            got: None,
            error: None,
        }
    }
}

/// What a page needs next.
enum Step {
    /// Wait for pages in flight, a retry or the deadline.
    Wait,
    /// A page came at once (from this node's own store): read it.
    Again,
    /// Reply: the page is full, or every partition has been read.
    Done(Option<Cursor>),
}

impl Node {
    /// Starts gathering one `GET_ALL` page for a client, or refuses at once.
    pub(super) fn start_scan(
        &mut self,
        client: ClientId,
        id: Option<serde_json::Value>,
        prefix: Option<String>,
        limit: Option<usize>,
        cursor: Option<Cursor>,
    ) {
        if self.view.epoch == 0 {
            let err = Error::Unavailable("the cluster is starting: no view yet".into());
            return self.reply(client, Response::error(&err, id));
        }
        let partitions = self.view.partition_count();
        let at = cursor.unwrap_or(Cursor {
            partition: 0,
            after: None,
        });
        if let Err(err) = self.check_cursor(&at) {
            return self.reply(client, Response::error(&err, id));
        }
        if self.scans.len() >= MAX_SCANS {
            let err = Error::Busy(format!(
                "{} is already gathering {MAX_SCANS} GET_ALL pages; retry later",
                node_name(self.id)
            ));
            return self.reply(client, Response::error(&err, id));
        }
        let scan_id = self.next_request;
        self.next_request += 1;
        self.scans.insert(
            scan_id,
            Scan {
                client,
                id,
                prefix,
                limit: limit.unwrap_or(DEFAULT_PAGE_LIMIT).clamp(1, MAX_PAGE_LIMIT),
                deadline: self.now + self.cfg.request_timeout,
                partitions,
                at,
                page: Vec::new(),
                bytes: 0,
                fetches: BTreeMap::new(),
                examined: 0,
                progressed: false,
            },
        );
        self.pump_scan(scan_id);
    }

    /// A cursor from a client names a partition of this cluster and, if a
    /// key, one that belongs to it: anything else did not come from a
    /// reply of this cluster.
    fn check_cursor(&self, c: &Cursor) -> Result<(), Error> {
        let partitions = self.view.partition_count();
        let bad = |why: String| {
            Err(Error::BadInput(format!(
                "bad request: bad cursor {c}: {why}"
            )))
        };
        if c.partition >= partitions {
            return bad(format!("the cluster has {partitions} partitions"));
        }
        match &c.after {
            Some(k) if self.view.partition_of(k) != c.partition => {
                bad(format!("the key is not in partition {}", c.partition))
            }
            _ => Ok(()),
        }
    }

    /// Moves a page on: reads the pages that came, asks for the next ones,
    /// and replies when the page is full, every partition is read, or the
    /// deadline has passed.
    pub(super) fn pump_scan(&mut self, scan_id: RequestId) {
        loop {
            let step = match self.scans.get_mut(&scan_id) {
                Some(scan) => match Self::read_fetched(scan) {
                    Some(cursor) => Step::Done(cursor),
                    None if self.now >= scan.deadline => {
                        let scan = self.scans.remove(&scan_id).expect("scan exists");
                        self.forget_fetches(&scan);
                        // The partition the page is stuck on says why; an
                        // error of one that answered since would mislead.
                        let p = scan.at.partition;
                        let err = scan
                            .fetches
                            .get(&p)
                            .and_then(|f| f.error.clone())
                            .unwrap_or_else(|| {
                                Error::Timeout(format!(
                                    "GET_ALL did not finish in time: no page of partition {p}"
                                ))
                            });
                        return self.reply(scan.client, Response::error(&err, scan.id));
                    }
                    None => self.ask_for_pages(scan_id),
                },
                None => return,
            };
            match step {
                Step::Wait => return,
                Step::Again => continue,
                Step::Done(cursor) => return self.finish_scan(scan_id, cursor),
            }
        }
    }

    /// Adds the pages that came, in partition order, to the client's page.
    /// Returns `Some(cursor)` when the page is done (`Some(None)`: nothing
    /// more in the cluster), `None` while it needs more.
    fn read_fetched(scan: &mut Scan) -> Option<Option<Cursor>> {
        loop {
            if scan.at.partition >= scan.partitions {
                return Some(None);
            }
            if scan.full() {
                return Some(Some(scan.at.clone()));
            }
            let p = scan.at.partition;
            let got = scan.fetches.get_mut(&p).and_then(|f| f.got.take());
            let Some((entries, next)) = got else {
                // This node's own pages are read in the same pass, one
                // after another: past the budget, the page goes back as it
                // is, with the cursor (it is not waited for, so no pass of
                // the node thread reads a whole store for one request).
                // Only once the cursor has moved: pages read ahead for the
                // window while the head's page is still on its way must
                // not answer with the client's own cursor, again and again.
                if scan.examined >= MAX_SCAN_EXAMINED && scan.progressed {
                    return Some(Some(scan.at.clone()));
                }
                return None;
            };
            scan.progressed = true;
            let mut all = true;
            for (k, v) in entries {
                if scan.full() {
                    all = false;
                    break;
                }
                scan.at.after = Some(k.clone());
                scan.bytes += k.len() + v.len();
                scan.page.push((k, v));
            }
            match next {
                _ if !all => return Some(Some(scan.at.clone())),
                Some(next) => {
                    // The primary read up to `next`, keys the prefix skipped
                    // included: go on from there.
                    scan.at.after = Some(next.clone());
                    let fetch = scan.fetches.get_mut(&p).expect("fetch exists");
                    fetch.after = Some(next);
                }
                None => {
                    scan.fetches.remove(&p);
                    scan.at = Cursor {
                        partition: p + 1,
                        after: None,
                    };
                }
            }
        }
    }

    /// Asks the primaries of the partitions in the window for the pages not
    /// yet asked for, serving this node's own at once.
    fn ask_for_pages(&mut self, scan_id: RequestId) -> Step {
        let now = self.now;
        let scan = self.scans.get_mut(&scan_id).expect("scan exists");
        let head = scan.at.partition;
        let end = head.saturating_add(SCAN_WINDOW).min(scan.partitions);
        let mut ready = Vec::new();
        for p in head..end {
            let after = if p == head {
                scan.at.after.clone()
            } else {
                None
            };
            let fetch = scan
                .fetches
                .entry(p)
                .or_insert_with(|| Fetch::new(after, now));
            if fetch.got.is_none() && fetch.asked.is_none() && fetch.retry_at <= now {
                ready.push((p, fetch.after.clone()));
            }
        }
        let prefix = scan.prefix.clone();
        let limit = scan.limit - scan.page.len();
        let mut step = Step::Wait;
        for (p, after) in ready {
            let request = self.next_request;
            self.next_request += 1;
            match self.primary_for(p) {
                Ok(node) if node == self.id => {
                    let result = self.serve_scan(p, after.as_deref(), prefix.as_deref(), limit);
                    if let Ok((_, examined)) = &result {
                        if p == head {
                            step = Step::Again;
                        }
                        if let Some(scan) = self.scans.get_mut(&scan_id) {
                            scan.examined += examined;
                        }
                    }
                    self.scan_pages.insert(request, (scan_id, p));
                    self.on_scan_page(request, p, result.map(|(page, _)| page));
                }
                Ok(node) => {
                    let fetch = self.fetch_mut(scan_id, p);
                    fetch.asked = Some((request, node, now));
                    self.scan_pages.insert(request, (scan_id, p));
                    self.send(
                        Address::Node(node),
                        Message::Scan {
                            request,
                            partition: p,
                            after,
                            prefix: prefix.clone(),
                            limit,
                        },
                    );
                }
                Err(e) => {
                    let backoff = self.cfg.retry_backoff;
                    let fetch = self.fetch_mut(scan_id, p);
                    fetch.retry_at = now + backoff;
                    fetch.error = Some(e);
                }
            }
        }
        step
    }

    fn fetch_mut(&mut self, scan_id: RequestId, p: PartitionId) -> &mut Fetch {
        self.scans
            .get_mut(&scan_id)
            .and_then(|s| s.fetches.get_mut(&p))
            .expect("fetch exists")
    }

    /// Replies with the page, sorted by key, and the cursor to go on from.
    fn finish_scan(&mut self, scan_id: RequestId, cursor: Option<Cursor>) {
        let Some(mut scan) = self.scans.remove(&scan_id) else {
            return;
        };
        self.forget_fetches(&scan);
        scan.page.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if scan.prefix.as_deref() == Some(LOCK_PREFIX) {
            let now = self.now;
            let locks = scan
                .page
                .iter()
                .map(|(key, value)| {
                    let state = LockState::of(&LockRecord::parse(Some(value)), now);
                    LockEntry {
                        name: lock_name(key).to_string(),
                        owner: state.owner,
                        token: state.token,
                        ttl_ms: state.ttl_ms,
                    }
                })
                .collect();
            let id = scan.id;
            return self.reply(scan.client, Response::Locks { locks, cursor, id });
        }
        let collection = scan
            .page
            .into_iter()
            .map(|(key, value)| Entry { key, value })
            .collect();
        let response = Response::Collection {
            collection,
            cursor,
            id: scan.id,
        };
        self.reply(scan.client, response);
    }

    /// Pages still in flight for a finished scan will be ignored.
    fn forget_fetches(&mut self, scan: &Scan) {
        for f in scan.fetches.values() {
            if let Some((req, _, _)) = f.asked {
                self.scan_pages.remove(&req);
            }
        }
    }

    /// A primary's page, or why there is none, for one of this node's
    /// scans.
    fn on_scan_page(
        &mut self,
        request: RequestId,
        p: PartitionId,
        result: Result<ScanPage, Error>,
    ) {
        let Some((scan_id, part)) = self.scan_pages.remove(&request) else {
            return;
        };
        let now = self.now;
        let backoff = self.cfg.retry_backoff;
        let Some(fetch) = self
            .scans
            .get_mut(&scan_id)
            .and_then(|s| s.fetches.get_mut(&part))
            .filter(|_| part == p)
        else {
            return;
        };
        fetch.asked = None;
        match result {
            Ok(page) => {
                fetch.got = Some(page);
                fetch.error = None;
            }
            Err(e) => {
                fetch.retry_at = now + backoff;
                fetch.error = Some(e);
            }
        }
    }

    /// A `ScanResponse` from a primary.
    pub(super) fn on_scan_response(
        &mut self,
        request: RequestId,
        p: PartitionId,
        result: Result<ScanPage, Error>,
    ) {
        let scan_id = self.scan_pages.get(&request).map(|(s, _)| *s);
        self.on_scan_page(request, p, result);
        if let Some(s) = scan_id {
            self.pump_scan(s);
        }
    }

    /// A `Scan` from a coordinator: serve the page as the partition's
    /// primary, or say why not.
    #[allow(clippy::too_many_arguments)] // The fields of one message.
    pub(super) fn on_scan_request(
        &mut self,
        from: Address,
        epoch: Epoch,
        request: RequestId,
        partition: PartitionId,
        after: Option<&str>,
        prefix: Option<&str>,
        limit: usize,
    ) {
        let Address::Node(coordinator) = from else {
            return;
        };
        let result = if epoch < self.view.epoch {
            self.reject_stale(coordinator);
            Err(Error::StaleEpoch {
                current: self.view.epoch,
            })
        } else {
            self.serve_scan(partition, after, prefix, limit.min(MAX_PAGE_LIMIT))
                .map(|(page, _)| page)
        };
        self.send(
            from,
            Message::ScanResponse {
                request,
                partition,
                result,
            },
        );
    }

    /// A page of partition `p` as its primary: committed pairs after
    /// `after`, at most `limit` of them and about [`PAGE_BYTES`]; and the
    /// pairs read for it.
    fn serve_scan(
        &self,
        p: PartitionId,
        after: Option<&str>,
        prefix: Option<&str>,
        limit: usize,
    ) -> Result<(ScanPage, usize), Error> {
        if !self.has_lease() {
            return Err(Error::Unavailable(format!(
                "{} has no valid lease",
                node_name(self.id)
            )));
        }
        let term = self.view.partitions.get(p as usize).map(|i| i.term);
        match self
            .leaders
            .get(&p)
            .filter(|l| Some(l.term) == term && l.activated())
        {
            Some(leader) => Ok(leader.scan(&self.store, after, prefix, limit, PAGE_BYTES)),
            None => Err(Error::NotPrimary(format!(
                "{} is not the primary of partition {p}",
                node_name(self.id)
            ))),
        }
    }

    /// A page request that could not be sent: ask again after a backoff.
    pub(super) fn on_scan_send_failed(&mut self, request: RequestId, p: PartitionId) {
        let err = Error::Unavailable("a primary is not reachable".into());
        self.on_scan_page(request, p, Err(err));
    }

    /// Ticks every scan: asks again for pages that got no answer, and
    /// fails scans past their deadline.
    pub(super) fn tick_scans(&mut self) {
        let now = self.now;
        let retry = self.cfg.forward_retry;
        let scans: Vec<RequestId> = self.scans.keys().copied().collect();
        for s in scans {
            if let Some(scan) = self.scans.get_mut(&s) {
                for f in scan.fetches.values_mut() {
                    if let Some((req, _, at)) = f.asked {
                        if now >= at + retry {
                            self.scan_pages.remove(&req);
                            f.asked = None;
                        }
                    }
                }
            }
            self.pump_scan(s);
        }
    }
}
