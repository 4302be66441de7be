//! Name lookups, bounded while they run rather than while they are awaited.
//!
//! The system's resolver (`getaddrinfo`) blocks a thread of the runtime's
//! blocking pool until it answers, and nothing can cancel it: a request
//! that gives up on a slow name leaves its lookup running, for as long as
//! the resolver's own timeouts and retries take. A procedure could
//! otherwise start lookups of names whose servers never answer faster than
//! they end, and fill the pool every database shares. So each lookup holds
//! a permit of its database and one of the whole server until the resolver
//! returns, and a lookup that finds none free waits (within the request's
//! time to resolve).

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, LazyLock};

use tokio::sync::Semaphore;

/// Lookups running at once, all databases together.
pub(crate) const MAX_SERVER_LOOKUPS: usize = 64;

/// The server-wide permits.
static SERVER_LOOKUPS: LazyLock<Arc<Semaphore>> =
    LazyLock::new(|| Arc::new(Semaphore::new(MAX_SERVER_LOOKUPS)));

/// Resolves `name` and `port` with the system's resolver, holding a permit
/// of `database` and one of the server until it returns.
pub(crate) async fn system(
    name: &str,
    port: u16,
    database: &Arc<Semaphore>,
) -> io::Result<Vec<SocketAddr>> {
    bounded(name, port, database, &SERVER_LOOKUPS, |name, port| {
        (name.as_str(), port)
            .to_socket_addrs()
            .map(Iterator::collect)
    })
    .await
}

/// Runs `resolve` on the blocking pool once a permit of `database` and
/// then one of `server` are free; both are released when `resolve` returns,
/// even if the caller stopped waiting long before.
async fn bounded<F>(
    name: &str,
    port: u16,
    database: &Arc<Semaphore>,
    server: &Arc<Semaphore>,
    resolve: F,
) -> io::Result<Vec<SocketAddr>>
where
    F: FnOnce(String, u16) -> io::Result<Vec<SocketAddr>> + Send + 'static,
{
    let closed = |_| io::Error::other("the name lookups of this database are closed");
    let database = Arc::clone(database).acquire_owned().await.map_err(closed)?;
    let server = Arc::clone(server).acquire_owned().await.map_err(closed)?;
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || {
        let _permits = (database, server);
        resolve(name, port)
    })
    .await
    .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    /// A resolver that answers only when told to, and says when it starts.
    fn held(
        started: mpsc::Sender<()>,
        release: mpsc::Receiver<()>,
    ) -> impl FnOnce(String, u16) -> io::Result<Vec<SocketAddr>> + Send + 'static {
        move |_, port| {
            let _ = started.send(());
            let _ = release.recv();
            Ok(vec![SocketAddr::from(([192, 0, 2, 1], port))])
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lookup_given_up_on_holds_its_permit_until_the_resolver_returns() {
        let database = Arc::new(Semaphore::new(1));
        let server = Arc::new(Semaphore::new(8));
        let (started, first_started) = mpsc::channel();
        let (release_first, release) = mpsc::channel();
        // The caller gives up on the first lookup; its resolver still runs.
        let gave_up = tokio::time::timeout(
            Duration::from_millis(100),
            bounded(
                "slow.example",
                80,
                &database,
                &server,
                held(started, release),
            ),
        )
        .await;
        assert!(gave_up.is_err(), "the lookup is still running");
        first_started.recv().expect("the first resolver started");
        // So the database's next lookup waits for it...
        let (started, second_started) = mpsc::channel();
        let (release_second, release) = mpsc::channel();
        let next = tokio::spawn({
            let (database, server) = (Arc::clone(&database), Arc::clone(&server));
            async move {
                bounded(
                    "next.example",
                    443,
                    &database,
                    &server,
                    held(started, release),
                )
                .await
            }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            second_started.try_recv().is_err(),
            "a second lookup ran while the first held the database's permit"
        );
        assert_eq!(
            server.available_permits(),
            7,
            "the server's permit is held too"
        );
        // ...until the first resolver returns.
        release_first.send(()).expect("the first resolver waits");
        second_started
            .recv_timeout(Duration::from_secs(10))
            .expect("the second lookup starts once the first returns");
        release_second.send(()).expect("the second resolver waits");
        let found = next.await.expect("the task").expect("resolved");
        assert_eq!(found, [SocketAddr::from(([192, 0, 2, 1], 443))]);
        assert_eq!(server.available_permits(), 8, "every permit is back");
        assert_eq!(database.available_permits(), 1);
    }

    #[tokio::test]
    async fn the_system_resolver_answers_for_loopback() {
        let database = Arc::new(Semaphore::new(1));
        let found = system("localhost", 8080, &database)
            .await
            .expect("localhost resolves");
        assert!(
            found
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 8080)
        );
        assert!(!found.is_empty());
        assert_eq!(database.available_permits(), 1);
    }
}
