//! The client's address, as far as the api can believe it.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;

/// The client's address: the peer, or, when the peer is a trusted proxy,
/// the right-most address in `X-Forwarded-For` that is not a trusted proxy.
pub fn client_ip(headers: &HeaderMap, peer: Option<IpAddr>, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter_map(|s| s.parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .or(Some(peer))
}

pub fn peer_ip(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap()];
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("198.51.100.1, 203.0.113.9"),
        );
        let proxy = Some("127.0.0.1".parse().unwrap());
        let stranger = Some("192.0.2.5".parse().unwrap());
        assert_eq!(
            client_ip(&headers, proxy, &trusted),
            Some("203.0.113.9".parse().unwrap())
        );
        assert_eq!(client_ip(&headers, stranger, &trusted), stranger);
        assert_eq!(client_ip(&HeaderMap::new(), proxy, &trusted), proxy);
    }
}
