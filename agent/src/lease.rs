//! Leader election among agent replicas through a `coordination.k8s.io/v1` Lease, the
//! way client-go's leader election does it: the leader renews the Lease every
//! [`Timing::retry`]; a replica takes over only when the holder's record has not
//! changed for a whole [`Timing::duration`] as this replica observed it (its own clock,
//! so clock skew between nodes does not matter); every write carries the Lease's
//! resourceVersion, so two candidates cannot both win. A leader that cannot renew
//! within the duration stops leading before anyone else may take over. On a clean
//! shutdown the leader releases the Lease so a follower takes over at once.
//!
//! The leader also records the address followers forward requests to, in the
//! annotation [`ANNOTATION_ADDRESS`].

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tracing::{info, warn};

/// The Lease's name in the agent's namespace.
pub const LEASE_NAME: &str = "gitsync-agent-leader";
/// Annotation on the Lease: the leader's HTTP address (`http://10.0.0.7:8080`).
pub const ANNOTATION_ADDRESS: &str = "gitsync.dev/leader-address";

/// How long a Lease lasts and how often it is renewed or retried.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub duration: Duration,
    pub retry: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(15),
            retry: Duration::from_secs(2),
        }
    }
}

/// Who leads, as this replica sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leadership {
    pub leading: bool,
    pub leader: Option<String>,
    pub address: Option<String>,
}

/// One candidate.
pub struct Elector {
    api: Api<Lease>,
    identity: String,
    address: Option<String>,
    timing: Timing,
    /// The holder's record last seen and when it was seen to change.
    observed: Option<(String, Instant)>,
    /// When this replica last renewed successfully while leading.
    renewed: Option<Instant>,
}

impl Elector {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        identity: &str,
        address: Option<String>,
        timing: Timing,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            identity: identity.to_owned(),
            address,
            timing,
            observed: None,
            renewed: None,
        }
    }

    /// Campaigns until `shutdown` flips, publishing every change of leadership.
    pub async fn run(
        mut self,
        publish: watch::Sender<Leadership>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let now = self.step().await;
            publish.send_if_modified(|current| {
                let changed = *current != now;
                if changed && now.leading != current.leading {
                    if now.leading {
                        info!(identity = %self.identity, "became the leader");
                    } else {
                        info!(identity = %self.identity, leader = ?now.leader, "following");
                    }
                }
                *current = now.clone();
                changed
            });
            tokio::select! {
                _ = shutdown.changed() => {
                    if now.leading {
                        self.release().await;
                    }
                    return;
                }
                () = tokio::time::sleep(self.timing.retry) => {}
            }
        }
    }

    /// One round: create, renew or take over the Lease, or follow its holder.
    async fn step(&mut self) -> Leadership {
        let lease = match self.api.get_opt(LEASE_NAME).await {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %crate::error_chain(&e), "cannot read the leader Lease");
                return self.unreachable();
            }
        };
        let Some(lease) = lease else {
            return match self
                .api
                .create(&PostParams::default(), &self.fresh(0))
                .await
            {
                Ok(_) => self.won(),
                Err(_) => self.unreachable(),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let record = format!(
            "{holder:?}/{:?}",
            spec.renew_time.as_ref().map(|t| t.0.to_string())
        );
        if self.observed.as_ref().is_none_or(|(r, _)| *r != record) {
            self.observed = Some((record, Instant::now()));
        }
        let expired = self
            .observed
            .as_ref()
            .is_some_and(|(_, at)| at.elapsed() >= self.lease_duration(&spec));
        let mine = holder.as_deref() == Some(self.identity.as_str());
        if !mine && holder.is_some() && !expired {
            self.renewed = None;
            return Leadership {
                leading: false,
                leader: holder,
                address: address_of(&lease),
            };
        }
        // Renew (mine) or take over (free or expired).
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let mut next = self.fresh(transitions);
        if mine && let Some(acquired) = spec.acquire_time {
            next.spec.get_or_insert_default().acquire_time = Some(acquired);
        }
        next.metadata.resource_version = lease.metadata.resource_version.clone();
        match self
            .api
            .replace(LEASE_NAME, &PostParams::default(), &next)
            .await
        {
            Ok(_) => self.won(),
            // Another candidate wrote first: it leads (seen on the next round).
            Err(_) if !mine => Leadership {
                leading: false,
                leader: holder,
                address: address_of(&lease),
            },
            Err(e) => {
                warn!(error = %crate::error_chain(&e), "cannot renew the leader Lease");
                self.unreachable()
            }
        }
    }

    fn lease_duration(&self, spec: &LeaseSpec) -> Duration {
        spec.lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.timing.duration, Duration::from_secs)
    }

    fn won(&mut self) -> Leadership {
        self.renewed = Some(Instant::now());
        Leadership {
            leading: true,
            leader: Some(self.identity.clone()),
            address: self.address.clone(),
        }
    }

    /// The API server could not be reached or refused: a leader keeps leading until
    /// its Lease would have expired for the others, then stops.
    fn unreachable(&mut self) -> Leadership {
        let still = self.renewed.is_some_and(|at| {
            at.elapsed() < self.timing.duration.saturating_sub(self.timing.retry)
        });
        if !still {
            self.renewed = None;
        }
        Leadership {
            leading: still,
            leader: still.then(|| self.identity.clone()),
            address: still.then(|| self.address.clone()).flatten(),
        }
    }

    /// A Lease held by this replica from now.
    fn fresh(&self, transitions: i32) -> Lease {
        let now = MicroTime(Timestamp::now());
        let seconds = i32::try_from(self.timing.duration.as_secs().max(1)).unwrap_or(15);
        Lease {
            metadata: ObjectMeta {
                name: Some(LEASE_NAME.to_owned()),
                annotations: self
                    .address
                    .as_ref()
                    .map(|a| [(ANNOTATION_ADDRESS.to_owned(), a.clone())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                lease_duration_seconds: Some(seconds),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(transitions),
                ..LeaseSpec::default()
            }),
        }
    }

    /// Gives the Lease up (a follower takes over on its next round).
    async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(LEASE_NAME).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        if let Err(e) = self
            .api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await
        {
            warn!(error = %crate::error_chain(&e), "cannot release the leader Lease");
        } else {
            info!("released the leader Lease");
        }
    }
}

fn address_of(lease: &Lease) -> Option<String> {
    lease
        .metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_ADDRESS)
        .cloned()
}
