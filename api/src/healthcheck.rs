//! `api healthcheck`: the container health check, without curl in the image.
//! Asks the api on this host for `GET /api/v1/health` and succeeds only on
//! a 200 within the time limit.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The address to ask for the api bound to `HOST`: that address itself, or
/// the loopback of its family when it listens on every address (`0.0.0.0`,
/// `::`, or a name).
pub fn local_address(host: &str) -> String {
    match host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_unspecified() && ip.is_ipv6() => "::1".to_owned(),
        Ok(ip) if !ip.is_unspecified() => ip.to_string(),
        _ => "127.0.0.1".to_owned(),
    }
}

/// Checks the api listening on `host:port` (see [`local_address`]).
pub async fn check(host: &str, port: u16, limit: Duration) -> Result<(), String> {
    let host = local_address(host);
    tokio::time::timeout(limit, ask(&host, port))
        .await
        .map_err(|_| format!("no answer from {host} port {port} within {limit:?}"))?
}

async fn ask(host: &str, port: u16) -> Result<(), String> {
    let mut stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("cannot connect to {host} port {port}: {e}"))?;
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_check_asks_where_the_api_listens() {
        assert_eq!(super::local_address("0.0.0.0"), "127.0.0.1");
        assert_eq!(super::local_address("::"), "::1");
        assert_eq!(super::local_address("[::1]"), "::1");
        assert_eq!(super::local_address("10.0.0.5"), "10.0.0.5");
        assert_eq!(super::local_address("localhost"), "127.0.0.1");
    }
}
