//! The origin every tier of `load peers` stands in front of: one small HTTP/1.1 server
//! (a thread per connection, keep-alive) that answers every GET with the same object (the
//! example service's list page) and `Cache-Control: public, max-age=3600`, and counts the
//! requests it answers, so that the run can show that no tier contacted it while it was
//! measured.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::Result;

/// How long the object is fresh: far longer than a run, so no tier revalidates.
pub(crate) const MAX_AGE_SECONDS: u64 = 3600;

/// A running origin; stopped on drop (its connection threads end with their connections).
pub(crate) struct Origin {
    port: u16,
    requests: Arc<AtomicU64>,
    stopping: Arc<AtomicBool>,
}

impl Origin {
    /// Listens on a free port of 127.0.0.1 and serves `body` to every request.
    pub(crate) fn start(body: Vec<u8>) -> Result<Origin> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let response: Arc<[u8]> = response(&body).into();
        let requests = Arc::new(AtomicU64::new(0));
        let stopping = Arc::new(AtomicBool::new(false));
        let (counter, stop) = (Arc::clone(&requests), Arc::clone(&stopping));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (response, counter) = (Arc::clone(&response), Arc::clone(&counter));
                std::thread::spawn(move || serve(stream, &response, &counter));
            }
        });
        Ok(Origin {
            port,
            requests,
            stopping,
        })
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The requests answered so far.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// The whole response, head and body: the same bytes for every request.
fn response(body: &[u8]) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nCache-Control: public, max-age={MAX_AGE_SECONDS}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    response
}

/// Answers each request of one connection (bodiless GETs: the tiers send nothing else)
/// until the peer closes it or stays idle for a minute.
fn serve(mut stream: TcpStream, response: &[u8], requests: &AtomicU64) {
    if stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .is_err()
    {
        return;
    }
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = head_end(&buffer) {
            buffer.drain(..end);
            requests.fetch_add(1, Ordering::Relaxed);
            if stream.write_all(response).is_err() {
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Where the first request head in `buffer` ends (after its blank line).
fn head_end(buffer: &[u8]) -> Option<usize> {
    buffer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|at| at + 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_pipelined_requests_and_counts_them() {
        let origin = Origin::start(b"{}".to_vec()).unwrap();
        let mut stream = TcpStream::connect(("127.0.0.1", origin.port())).unwrap();
        let request = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
        stream
            .write_all(format!("{request}{request}").as_bytes())
            .unwrap();
        let expected = response(b"{}");
        let mut received = vec![0u8; expected.len() * 2];
        stream.read_exact(&mut received).unwrap();
        assert_eq!(received, [expected.clone(), expected].concat());
        let head = String::from_utf8_lossy(&received);
        assert!(
            head.contains("Cache-Control: public, max-age=3600\r\n"),
            "{head}"
        );
        assert_eq!(origin.requests(), 2);
    }
}
