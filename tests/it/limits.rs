//! A client cannot hold the daemon: headers must arrive within the deadline, oversized
//! heads and bodies are refused, and other clients are served meanwhile.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{Backend, Daemon, Storage};

const CONFIG: &str =
    "[server]\nheader_read_timeout = \"1s\"\nmax_header_bytes = 16384\nmax_body_bytes = 65536\n";

/// Reads until the server closes the connection (or `limit` passes); returns what came.
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&seen).into_owned()),
            Ok(Ok(n)) => seen.extend_from_slice(&buffer[..n]),
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_oversized_clients_are_cut_off() {
    let storage = Storage::new(Backend::Sqlite).await;
    let daemon = Daemon::start_with_config(&storage, CONFIG).await;
    let addr = format!("127.0.0.1:{}", daemon.port);

    // Trickled headers: cut off after the deadline, while others are served meanwhile.
    let mut slow = TcpStream::connect(&addr).await.expect("connect");
    slow.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    assert_eq!(
        daemon.get("/ok").await.0,
        200,
        "another client is served meanwhile"
    );
    let answer = read_to_close(&mut slow, Duration::from_secs(5))
        .await
        .expect("the server must close a connection whose headers never finish");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    assert!(!answer.contains("200 OK"), "{answer}");

    // A head larger than the cap.
    let mut big = TcpStream::connect(&addr).await.expect("connect");
    let filler = "a".repeat(40_000);
    let request = format!("GET /ok HTTP/1.1\r\nHost: x\r\nX-Filler: {filler}\r\n\r\n");
    let _ = big.write_all(request.as_bytes()).await;
    let answer = read_to_close(&mut big, Duration::from_secs(5))
        .await
        .unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    // A body larger than the cap: 413 with LangGraph's JSON error, nothing stored.
    let body = format!("{{\"metadata\": {{\"x\": \"{}\"}}}}", "b".repeat(70_000));
    let (status, detail) = daemon.post_raw("/threads", body.into_bytes()).await;
    assert_eq!(status, 413, "{detail}");
    let (_, count) = daemon.post("/threads/count", &serde_json::json!({})).await;
    assert_eq!(count, serde_json::json!(0));
}
