//! `api healthcheck`: the container health check, without curl in the image.
//! Asks the api on this host for `GET /api/v1/health` and succeeds only on
//! a 200 within the time limit.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Checks the api listening on `127.0.0.1:port`.
pub async fn check(port: u16, limit: Duration) -> Result<(), String> {
    tokio::time::timeout(limit, ask(port))
        .await
        .map_err(|_| format!("no answer from 127.0.0.1:{port} within {limit:?}"))?
}

async fn ask(port: u16) -> Result<(), String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot connect to 127.0.0.1:{port}: {e}"))?;
    stream
        .write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        let n = stream
            .read(&mut head[read..])
            .await
            .map_err(|e| format!("cannot read the answer: {e}"))?;
        if n == 0 {
            break;
        }
        read += n;
    }
    let line = String::from_utf8_lossy(&head[..read]);
    match line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some(status) => Err(format!("GET /api/v1/health answered {status}")),
        None => Err("GET /api/v1/health: no HTTP status in the answer".into()),
    }
}
