//! A registry's address as users write it: `https://registry.example.com`, or a bare host
//! (`registry.example.com`, `registry.example.com:8443`) taken as HTTPS, as `warg` takes it.

use std::fmt;
use std::str::FromStr;

use reqwest::Url;

use crate::error::ClientError;

/// A registry URL: `http` or `https`, a host, no query or fragment; written without a trailing
/// slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryUrl(Url);

impl FromStr for RegistryUrl {
    type Err = ClientError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| ClientError::BadUrl {
            url: text.to_owned(),
            reason: reason.to_owned(),
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(bad("it is empty"));
        }
        let with_scheme = if text.contains("://") {
            text.to_owned()
        } else {
            format!("https://{text}")
        };
        let url = Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("a registry is reached over http:// or https://"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("it names no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("a registry URL has no query (`?`) or fragment (`#`)"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "credentials do not belong in the URL: use `cairn login` (or CAIRN_TOKEN)",
            ));
        }
        Ok(RegistryUrl(url))
    }
}

impl fmt::Display for RegistryUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str().trim_end_matches('/'))
    }
}

impl RegistryUrl {
    /// A file name for the registry's local state, from its whole origin (scheme, host, port)
    /// and path: `https_registry.example.com_443`, `http_127.0.0.1_8090_some_path`.
    pub fn storage_name(&self) -> String {
        let port = self.0.port_or_known_default().unwrap_or(0);
        let host = self.0.host_str().unwrap_or_default();
        let mut name = format!("{}_{host}_{port}", self.0.scheme());
        let path = self.0.path().trim_matches('/');
        if !path.is_empty() {
            name.push('_');
            name.push_str(path);
        }
        file_name_of(&name)
    }
}

/// `text` with every character but ASCII letters, digits, `.` and `-` replaced by `_`.
pub fn file_name_of(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<String, String> {
        text.parse::<RegistryUrl>()
            .map(|url| url.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_bare_host_is_https_and_a_trailing_slash_goes() {
        assert_eq!(
            parse("registry.example.com").unwrap(),
            "https://registry.example.com"
        );
        assert_eq!(
            parse("example.com:8443").unwrap(),
            "https://example.com:8443"
        );
        assert_eq!(
            parse("http://127.0.0.1:8090/").unwrap(),
            "http://127.0.0.1:8090"
        );
        assert_eq!(
            parse("https://example.com/cairn/").unwrap(),
            "https://example.com/cairn"
        );
    }

    #[test]
    fn what_is_not_a_registry_url_is_refused_with_a_reason() {
        for (text, reason) in [
            ("ftp://example.com", "http:// or https://"),
            ("https://example.com/?x=1", "no query"),
            ("https://user:pw@example.com", "cairn login"),
            ("", "empty"),
            ("https://", "empty host"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(reason), "{text:?}: {error}");
        }
    }

    #[test]
    fn the_storage_name_keeps_the_scheme_host_port_and_path_apart() {
        let name = |text: &str| text.parse::<RegistryUrl>().unwrap().storage_name();
        assert_eq!(name("http://127.0.0.1:8090"), "http_127.0.0.1_8090");
        assert_eq!(name("https://127.0.0.1:8090"), "https_127.0.0.1_8090");
        assert_eq!(name("example.com"), "https_example.com_443");
        assert_eq!(
            name("https://example.com:443/a/b"),
            "https_example.com_443_a_b"
        );
    }
}
