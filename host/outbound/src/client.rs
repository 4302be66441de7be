//! The per-database client: checks, the in-flight cap, and the redirect loop.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use tokio::sync::Semaphore;

use crate::allow::AllowList;
use crate::budget::{Budget, Phase};
use crate::connect;
use crate::exchange;
use crate::limits::{HttpPolicy, PolicyError};
use crate::redirect::next_hop;
use crate::request::prepare;
use crate::target::Target;
use crate::types::{HttpError, HttpErrorKind, HttpRequest, HttpResponse};

/// The outbound HTTP client of one database. Cheap to clone: clones share
/// the policy, the in-flight cap and the cap on name lookups, and the
/// allow-list, which [`set_allow_list`](Self::set_allow_list) replaces for
/// all of them at once.
#[derive(Debug, Clone)]
pub struct OutboundHttp {
    /// The override and the limits (its list is the one it started with).
    policy: Arc<HttpPolicy>,
    /// The allow-list now: read at each request and at each redirect.
    allow: Arc<RwLock<AllowList>>,
    slots: Arc<Semaphore>,
    /// Name lookups running at once: as many as requests in flight, held
    /// until the resolver returns (see [`crate::lookup`]).
    lookups: Arc<Semaphore>,
}

impl OutboundHttp {
    /// A client enforcing `policy`; refused when a limit could never be
    /// met (a zero timeout, or no request allowed in flight).
    pub fn new(policy: HttpPolicy) -> Result<Self, PolicyError> {
        policy.limits.check()?;
        let slots = Arc::new(Semaphore::new(policy.limits.max_in_flight));
        let lookups = Arc::new(Semaphore::new(policy.limits.max_in_flight));
        Ok(Self {
            allow: Arc::new(RwLock::new(policy.allow.clone())),
            policy: Arc::new(policy),
            slots,
            lookups,
        })
    }

    /// Replaces the allow-list of this client and every clone of it,
    /// requests in flight included: each later request, and each redirect
    /// of one already sent, is checked against `allow`. (Revoking a host
    /// stops what is already connected to it only at its next hop.)
    pub fn set_allow_list(&self, allow: AllowList) {
        *self.allow.write().unwrap_or_else(PoisonError::into_inner) = allow;
    }

    /// The policy this client enforces now: its allow-list as it is now,
    /// its override and its limits.
    pub fn policy(&self) -> HttpPolicy {
        HttpPolicy {
            allow: self.allow_list(),
            ..(*self.policy).clone()
        }
    }

    fn allow_list(&self) -> AllowList {
        self.allow
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sends `request` and waits for the whole final response, following
    /// redirects. Never panics on any input: every failure is an
    /// [`HttpError`]. The exchange ends at the earliest of the total limit,
    /// the request's timeout and `deadline`; waiting for an in-flight slot
    /// counts against it.
    pub async fn send(
        &self,
        request: HttpRequest,
        deadline: Option<Instant>,
    ) -> Result<HttpResponse, HttpError> {
        let policy = &self.policy;
        let limits = &policy.limits;
        let budget = Budget::new(limits, request.timeout, deadline);
        let mut hop = prepare(request, limits)?;
        self.check_allowed(&hop.target, None)?;
        let _slot = budget
            .run(hop.target.host_text(), Phase::queue(), self.slots.acquire())
            .await?
            .map_err(|_| {
                HttpError::new(
                    HttpErrorKind::Connect,
                    "the outbound HTTP client of this database is closed",
                )
            })?;
        // Checked again once a slot is taken: the list may have changed
        // (or been revoked) while the request waited for one.
        self.check_allowed(&hop.target, None)?;
        let mut redirects = 0;
        loop {
            let stream = connect::open(
                &hop.target,
                &policy.overrides,
                limits,
                &budget,
                &self.lookups,
            )
            .await?;
            let head = exchange::send(stream, &hop, limits, &budget).await?;
            let Some(next) = next_hop(&hop, head.status, &head.headers)? else {
                let host = hop.target.host_text();
                let status = head.status.as_u16();
                let headers = head
                    .headers
                    .iter()
                    .map(|(name, value)| {
                        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                        (name.as_str().to_owned(), value)
                    })
                    .collect();
                let body = exchange::read_body(head, host, limits, &budget).await?;
                return Ok(HttpResponse {
                    status,
                    headers,
                    body,
                });
            };
            if redirects >= limits.max_redirects {
                return Err(HttpError::new(
                    HttpErrorKind::TooManyRedirects,
                    format!(
                        "{} redirected once more after {redirects} redirects; at most {} are followed",
                        hop.target.host_text(),
                        limits.max_redirects
                    ),
                ));
            }
            redirects += 1;
            self.check_allowed(&next.target, Some(&hop.target))?;
            hop = next;
        }
    }

    /// `denied` unless the allow-list has the target's host and port.
    fn check_allowed(
        &self,
        target: &Target,
        redirected_from: Option<&Target>,
    ) -> Result<(), HttpError> {
        let permitted = self
            .allow
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .permits(target);
        if permitted {
            return Ok(());
        }
        let message = match redirected_from {
            None => format!("{target} is not on this database's HTTP allow-list"),
            Some(from) => format!(
                "{} redirected to {target}, which is not on this database's HTTP allow-list",
                from.host_text()
            ),
        };
        Err(HttpError::new(HttpErrorKind::Denied, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::HttpLimits;
    use std::time::Duration;

    #[test]
    fn the_send_future_can_move_between_threads() {
        fn assert_send<T: Send>(_: &T) {}
        let client = OutboundHttp::new(HttpPolicy::default()).expect("default policy");
        let request = HttpRequest {
            method: "GET".into(),
            url: "http://example.com/".into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
        };
        assert_send(&client.send(request, None));
    }

    #[test]
    fn limits_no_request_could_meet_are_refused() {
        let policy = |limits| HttpPolicy {
            limits,
            ..HttpPolicy::default()
        };
        let zero_connect = HttpLimits {
            connect_timeout: Duration::ZERO,
            ..HttpLimits::default()
        };
        assert_eq!(
            OutboundHttp::new(policy(zero_connect)).err(),
            Some(PolicyError::ZeroTimeout { limit: "connect" })
        );
        let none_in_flight = HttpLimits {
            max_in_flight: 0,
            ..HttpLimits::default()
        };
        assert!(matches!(
            OutboundHttp::new(policy(none_in_flight)),
            Err(PolicyError::InFlight { given: 0, .. })
        ));
    }

    #[tokio::test]
    async fn the_default_policy_denies_everything() {
        let client = OutboundHttp::new(HttpPolicy::default()).expect("default policy");
        assert_eq!(client.policy().limits, HttpLimits::default());
        let request = HttpRequest {
            method: "GET".into(),
            url: "https://example.com/".into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
        };
        let err = client.send(request, None).await.expect_err("denied");
        assert_eq!(err.kind, HttpErrorKind::Denied);
        assert_eq!(
            err.message,
            "https://example.com:443 is not on this database's HTTP allow-list"
        );
    }
}
