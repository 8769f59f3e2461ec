use std::collections::HashMap;
use std::str::FromStr;

/// A missing or malformed configuration value. `Display` is a single line that
/// names the variable and what is expected, and never includes the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{variable} is not set; expected {expected}")]
    Missing {
        variable: &'static str,
        expected: &'static str,
    },
    #[error("{variable} is invalid; expected {expected}")]
    Invalid {
        variable: &'static str,
        expected: &'static str,
    },
    /// A value (or the file it names) that was read and refused; `reason`
    /// says what is wrong in it, and is never a secret.
    #[error("{variable}: {reason}")]
    Rejected {
        variable: &'static str,
        reason: String,
    },
}

impl ConfigError {
    pub fn variable(&self) -> &'static str {
        match self {
            ConfigError::Missing { variable, .. }
            | ConfigError::Invalid { variable, .. }
            | ConfigError::Rejected { variable, .. } => variable,
        }
    }
}

/// A snapshot of the environment variables a binary reads.
///
/// Empty values count as unset, so `FOO=` in `.env` falls back to the default.
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Variable names only: values may be secrets.
        let mut names: Vec<&String> = self.vars.keys().collect();
        names.sort();
        f.debug_struct("Env").field("names", &names).finish()
    }
}

impl Env {
    /// Loads `.env` from the working directory or a parent (if any) into the
    /// process environment, without overriding variables already set, and
    /// snapshots the result.
    pub fn load() -> Self {
        let _ = dotenvy::dotenv();
        Self {
            vars: std::env::vars().collect(),
        }
    }

    /// An environment made of the given pairs only (tests, tools).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Returns a copy with `name` set to `value`.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.vars.insert(name.to_owned(), value.into());
        self
    }

    /// The raw value, with empty strings treated as unset.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub fn required_str(
        &self,
        variable: &'static str,
        expected: &'static str,
    ) -> Result<&str, ConfigError> {
        self.raw(variable)
            .ok_or(ConfigError::Missing { variable, expected })
    }

    /// Parses a required value with `FromStr`.
    pub fn required<T: FromStr>(
        &self,
        variable: &'static str,
        expected: &'static str,
    ) -> Result<T, ConfigError> {
        let raw = self.required_str(variable, expected)?;
        raw.parse()
            .map_err(|_| ConfigError::Invalid { variable, expected })
    }

    /// Parses an optional value with `FromStr`, falling back to `default`.
    pub fn parse_or<T: FromStr>(
        &self,
        variable: &'static str,
        default: T,
        expected: &'static str,
    ) -> Result<T, ConfigError> {
        match self.raw(variable) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|_| ConfigError::Invalid { variable, expected }),
        }
    }

    /// A boolean: `true/false`, `1/0`, `yes/no`, `on/off` (any case).
    pub fn bool_or(&self, variable: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(variable).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(_) => Err(ConfigError::Invalid {
                variable,
                expected: "true or false",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_count_as_unset() {
        let env = Env::from_pairs([("PORT", "  ")]);
        assert_eq!(env.parse_or("PORT", 8001u16, "a port").unwrap(), 8001);
    }

    #[test]
    fn malformed_value_names_variable_but_not_value() {
        let env = Env::from_pairs([("PORT", "hunter2")]);
        let err = env
            .parse_or("PORT", 8001u16, "a TCP port (1-65535)")
            .unwrap_err();
        let line = err.to_string();
        assert_eq!(line, "PORT is invalid; expected a TCP port (1-65535)");
        assert!(!line.contains("hunter2"));
    }

    #[test]
    fn booleans() {
        let env = Env::from_pairs([("A", "Yes"), ("B", "off"), ("C", "maybe")]);
        assert!(env.bool_or("A", false).unwrap());
        assert!(!env.bool_or("B", true).unwrap());
        assert!(env.bool_or("D", true).unwrap());
        assert_eq!(env.bool_or("C", true).unwrap_err().variable(), "C");
    }

    #[test]
    fn debug_lists_names_only() {
        let env = Env::from_pairs([("JWT_SECRET", "s3cr3t-value")]);
        let shown = format!("{env:?}");
        assert!(shown.contains("JWT_SECRET"));
        assert!(!shown.contains("s3cr3t-value"));
    }
}
