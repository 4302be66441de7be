//! A plain HTTP/1.1 server on loopback for procedure tests: it answers
//! every request with the same bytes and reports each request line.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;

/// A running stub server.
pub struct HttpStub {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Each request's first line (`GET /path HTTP/1.1`), in arrival order.
    pub requests: mpsc::Receiver<String>,
}

/// Starts a server that, for each request, reads its head, reports its
/// request line, runs `before_answer` (a test may hold the answer there)
/// and writes `response` (status line, headers and body) before closing.
pub fn start(response: Vec<u8>, before_answer: impl Fn() + Send + 'static) -> HttpStub {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    let (report, requests) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().expect("a clone"));
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = report.send(first.trim().to_owned());
            before_answer();
            let _ = stream.write_all(&response);
        }
    });
    HttpStub { addr, requests }
}
