use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// A connection URL that may carry a password. `Debug` and `Display` show it
/// with the password replaced by `***`; [`SecretUrl::expose`] gives the real one.
#[derive(Clone)]
pub struct SecretUrl {
    secret: SecretString,
    redacted: String,
    parsed: Url,
}

impl SecretUrl {
    /// Parses `raw`, accepting only the given schemes.
    pub fn parse(raw: &str, schemes: &[&str]) -> Option<Self> {
        let parsed = Url::parse(raw).ok()?;
        if !schemes.contains(&parsed.scheme()) || !parsed.has_host() {
            return None;
        }
        let mut shown = parsed.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("***"));
        }
        Some(Self {
            secret: SecretString::from(raw.to_owned()),
            redacted: shown.to_string(),
            parsed,
        })
    }

    /// The full URL, password included. Pass it to a client; never log it.
    pub fn expose(&self) -> &str {
        self.secret.expose_secret()
    }

    pub fn scheme(&self) -> &str {
        self.parsed.scheme()
    }

    /// The percent-decoded user name, if any.
    pub fn username(&self) -> Option<String> {
        let user = self.parsed.username();
        if user.is_empty() {
            return None;
        }
        Some(decode(user))
    }

    /// The percent-decoded password, if any.
    pub fn password(&self) -> Option<SecretString> {
        self.parsed
            .password()
            .map(|p| SecretString::from(decode(p)))
    }

    pub fn host(&self) -> Option<&str> {
        self.parsed.host_str()
    }

    pub fn port(&self) -> Option<u16> {
        self.parsed.port()
    }

    /// The path without its leading slash (a database name, a vhost).
    pub fn path_name(&self) -> Option<String> {
        let path = self.parsed.path().trim_start_matches('/');
        (!path.is_empty()).then(|| decode(path))
    }

    /// The same URL with another path (for example another database name).
    pub fn with_path_name(&self, name: &str) -> Self {
        let mut url = Url::parse(self.expose()).expect("already parsed once");
        url.set_path(&format!("/{name}"));
        let scheme = url.scheme().to_owned();
        Self::parse(url.as_str(), &[&scheme]).expect("same scheme and host")
    }
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_owned())
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl std::fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_password_everywhere_but_expose() {
        let url = SecretUrl::parse("postgres://app:p%40ss@db:5432/ferro", &["postgres"]).unwrap();
        assert_eq!(format!("{url:?}"), "postgres://app:***@db:5432/ferro");
        assert_eq!(url.to_string(), "postgres://app:***@db:5432/ferro");
        assert_eq!(url.expose(), "postgres://app:p%40ss@db:5432/ferro");
        assert_eq!(url.username().as_deref(), Some("app"));
        assert_eq!(url.password().unwrap().expose_secret(), "p@ss");
        assert_eq!(url.path_name().as_deref(), Some("ferro"));
    }

    #[test]
    fn rejects_other_schemes() {
        assert!(SecretUrl::parse("mysql://a@b/c", &["postgres", "postgresql"]).is_none());
        assert!(SecretUrl::parse("not a url", &["postgres"]).is_none());
    }

    #[test]
    fn swaps_database_name() {
        let url = SecretUrl::parse("postgres://u:pw@h/one?sslmode=disable", &["postgres"]).unwrap();
        let other = url.with_path_name("two");
        assert_eq!(other.expose(), "postgres://u:pw@h/two?sslmode=disable");
    }
}
