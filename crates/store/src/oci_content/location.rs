//! Where an OCI content store lives: the `oci://HOST[:PORT]/REPOSITORY` text of `--content`,
//! with credentials in its userinfo or in the environment, parsed into an [`OciLocation`]
//! that never prints a password.

/// The environment variable holding the user name for the content registry.
pub const CONTENT_USERNAME_ENV: &str = "CAIRN_CONTENT_USERNAME";
/// The environment variable holding the password (or token) for the content registry.
pub const CONTENT_PASSWORD_ENV: &str = "CAIRN_CONTENT_PASSWORD";

/// How the registry is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

/// A user name and password for a registry. The password never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or access token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// The credentials in `CAIRN_CONTENT_USERNAME` and `CAIRN_CONTENT_PASSWORD`, if the
    /// password is set (the user name may be empty).
    pub fn from_env() -> Option<Credentials> {
        let password = std::env::var(CONTENT_PASSWORD_ENV).ok()?;
        let username = std::env::var(CONTENT_USERNAME_ENV).unwrap_or_default();
        Some(Credentials { username, password })
    }
}

/// Why a text is not an OCI content location.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OciLocationError {
    /// The scheme is not one of ours.
    #[error("unknown content store scheme in {0:?} (use oci://, oci+http://, oci+https:// or a directory path)")]
    UnknownScheme(String),
    /// No host after the scheme.
    #[error("no registry host in {0:?} (expected oci://HOST[:PORT]/REPOSITORY)")]
    MissingHost(String),
    /// The port is not a number from 1 to 65535.
    #[error("invalid port in {0:?}")]
    BadPort(String),
    /// The host is not a DNS name or an IP address.
    #[error("invalid registry host in {0:?}")]
    BadHost(String),
    /// No repository after the host.
    #[error("no repository in {0:?} (expected oci://HOST[:PORT]/REPOSITORY)")]
    MissingRepository(String),
    /// The repository is not an OCI repository name.
    #[error("invalid repository name {0:?} (lowercase letters and digits, separated by `.`, `_`, `__`, `-` or `/`)")]
    BadRepository(String),
    /// A query or fragment follows the repository.
    #[error("a content location takes no query or fragment: {0:?}")]
    QueryOrFragment(String),
    /// The user information is not valid percent-encoded UTF-8.
    #[error("invalid percent-encoding in the credentials of the content location")]
    BadUserinfo,
    /// An `@` follows the host: credentials holding an unencoded `/`.
    #[error("an `@` after the registry host in {0:?} (percent-encode `/`, `@`, `:`, `?` and `#` in credentials as %2F, %40, %3A, %3F and %23)")]
    UnencodedUserinfo(String),
}

/// Where an OCI content store lives: a registry and a repository in it, and the credentials
/// given with the location, if any. Displays without the credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct OciLocation {
    /// How the registry is reached.
    pub transport: Transport,
    /// `host` or `host:port`, lowercase (IPv6 addresses in brackets).
    pub authority: String,
    /// The repository holding the blobs, e.g. `cairn/content`.
    pub repository: String,
    /// Credentials from the location's userinfo.
    pub credentials: Option<Credentials>,
    /// Whether the scheme named the transport (`oci+http://`, `oci+https://`).
    explicit_transport: bool,
}

impl std::fmt::Debug for OciLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for OciLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match (self.explicit_transport, self.transport) {
            (false, _) => "oci",
            (true, Transport::Http) => "oci+http",
            (true, Transport::Https) => "oci+https",
        };
        write!(f, "{scheme}://{}/{}", self.authority, self.repository)
    }
}

/// Whether a text starts like an OCI content location: `oci` (in any case) followed by `:` or
/// `+`. Such a text is a location or an error, never a directory.
pub(crate) fn is_oci_location(text: &str) -> bool {
    text.get(..3)
        .is_some_and(|start| start.eq_ignore_ascii_case("oci"))
        && matches!(text.as_bytes().get(3), Some(b':' | b'+'))
}

/// The scheme of a URL-like text: a letter, then letters, digits, `+`, `-` or `.`, before a `:`.
pub(crate) fn scheme_of(text: &str) -> Option<&str> {
    let (scheme, _) = text.split_once(':')?;
    let mut bytes = scheme.bytes();
    let valid = bytes.next()?.is_ascii_alphabetic()
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    valid.then_some(scheme)
}

/// `text` with its credentials hidden, for every error message: everything between the scheme
/// (and the slashes after it) and the last `@` becomes `***@`, so that a password is hidden
/// whatever it holds (an unencoded `/`, `?`, `#`, ...). Without a scheme followed by `/`, it is
/// everything between the `://`, or else the start, and the last `@`. Text without `@` is
/// returned as it is.
pub(crate) fn redact_credentials(text: &str) -> String {
    let Some(at) = text.rfind('@') else {
        return text.to_owned();
    };
    let start = match scheme_of(text) {
        Some(scheme) if text[scheme.len() + 1..].starts_with('/') => {
            let after = scheme.len() + 1;
            after + text[after..].bytes().take_while(|&b| b == b'/').count()
        }
        _ => text[..at].find("://").map_or(0, |index| index + 3),
    };
    if start > at {
        return text.to_owned();
    }
    format!("{}***@{}", &text[..start], &text[at + 1..])
}

impl std::str::FromStr for OciLocation {
    type Err = OciLocationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let shown = redact_credentials(text);
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(OciLocationError::UnknownScheme(shown));
        };
        // Schemes are case-insensitive.
        let scheme = scheme.to_ascii_lowercase();
        let transport = match scheme.as_str() {
            "oci" => None,
            "oci+http" => Some(Transport::Http),
            "oci+https" => Some(Transport::Https),
            _ => return Err(OciLocationError::UnknownScheme(shown)),
        };
        if rest.contains(['?', '#']) {
            return Err(OciLocationError::QueryOrFragment(shown));
        }
        let (authority_with_userinfo, path) = rest.split_once('/').unwrap_or((rest, ""));
        // Repository names hold no `@`: one after the host ends credentials with an unencoded
        // `/` in them.
        if path.contains('@') {
            return Err(OciLocationError::UnencodedUserinfo(shown));
        }
        let (credentials, authority) = match authority_with_userinfo.rsplit_once('@') {
            Some((userinfo, authority)) => {
                let (username, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let credentials = Credentials {
                    username: percent_decode(username)?,
                    password: percent_decode(password)?,
                };
                (Some(credentials), authority)
            }
            None => (None, authority_with_userinfo),
        };
        let authority = parse_authority(authority, &shown)?;
        let repository = path.trim_end_matches('/');
        if repository.is_empty() {
            return Err(OciLocationError::MissingRepository(shown));
        }
        if !is_repository_name(repository) {
            return Err(OciLocationError::BadRepository(redact_credentials(
                repository,
            )));
        }
        let transport = transport.unwrap_or(if is_loopback(&authority) {
            Transport::Http
        } else {
            Transport::Https
        });
        Ok(OciLocation {
            transport,
            authority,
            repository: repository.to_owned(),
            credentials,
            explicit_transport: scheme != "oci",
        })
    }
}

impl OciLocation {
    /// `http://authority` or `https://authority`.
    pub fn origin(&self) -> String {
        let scheme = match self.transport {
            Transport::Http => "http",
            Transport::Https => "https",
        };
        format!("{scheme}://{}", self.authority)
    }

    /// Whether `other` names the same repository of the same registry, reached the same
    /// way (credentials aside).
    pub fn same_store(&self, other: &OciLocation) -> bool {
        self.transport == other.transport
            && self.authority == other.authority
            && self.repository == other.repository
    }
}

fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.split(':').next().unwrap_or(authority)
}

fn percent_decode(text: &str) -> Result<String, OciLocationError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let pair = text
                .get(index + 1..index + 3)
                .ok_or(OciLocationError::BadUserinfo)?;
            let byte = u8::from_str_radix(pair, 16).map_err(|_| OciLocationError::BadUserinfo)?;
            out.push(byte);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).map_err(|_| OciLocationError::BadUserinfo)
}

/// Checks `host[:port]` and returns it with the host in lowercase.
fn parse_authority(authority: &str, shown: &str) -> Result<String, OciLocationError> {
    if authority.is_empty() {
        return Err(OciLocationError::MissingHost(shown.to_owned()));
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (address, after) = rest
            .split_once(']')
            .ok_or_else(|| OciLocationError::BadHost(shown.to_owned()))?;
        if address.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(OciLocationError::BadHost(shown.to_owned()));
        }
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| OciLocationError::BadHost(shown.to_owned()))?,
            ),
        };
        (format!("[{address}]"), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let valid = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !valid {
            return Err(OciLocationError::BadHost(shown.to_owned()));
        }
        (host.to_ascii_lowercase(), port)
    };
    match port {
        None => Ok(host),
        Some(port) => match port.parse::<u16>() {
            Ok(number) if number > 0 && !port.starts_with('0') => Ok(format!("{host}:{number}")),
            _ => Err(OciLocationError::BadPort(shown.to_owned())),
        },
    }
}

pub(crate) fn is_loopback(authority: &str) -> bool {
    let host = host_of(authority);
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// The distribution spec's repository name grammar: path components of lowercase
/// alphanumerics separated by `.`, `_`, `__` or runs of `-`, joined by `/`.
fn is_repository_name(name: &str) -> bool {
    name.split('/').all(|component| {
        let bytes = component.as_bytes();
        let alphanumeric = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if bytes.is_empty() || !alphanumeric(bytes[0]) || !alphanumeric(bytes[bytes.len() - 1]) {
            return false;
        }
        let mut index = 0;
        while index < bytes.len() {
            if alphanumeric(bytes[index]) {
                index += 1;
                continue;
            }
            let start = index;
            while index < bytes.len() && !alphanumeric(bytes[index]) {
                index += 1;
            }
            let separator = &component[start..index];
            let dashes = separator.bytes().all(|b| b == b'-');
            if !(separator == "." || separator == "_" || separator == "__" || dashes) {
                return false;
            }
        }
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<OciLocation, OciLocationError> {
        text.parse()
    }

    #[test]
    fn loopback_hosts_use_plain_http_and_others_https() {
        for (text, transport) in [
            ("oci://127.0.0.1:5000/cairn/content", Transport::Http),
            ("oci://localhost/cairn", Transport::Http),
            ("oci://[::1]:5000/cairn", Transport::Http),
            ("oci://ghcr.io/acme/cairn-content", Transport::Https),
            ("oci+http://registry.internal:5000/cairn", Transport::Http),
            ("oci+https://127.0.0.1:5000/cairn", Transport::Https),
        ] {
            assert_eq!(parse(text).unwrap().transport, transport, "{text}");
        }
    }

    #[test]
    fn a_location_displays_canonically_without_credentials() {
        let location = parse("oci://user:p%40ss@Registry.Example:443/a/b/").unwrap();
        assert_eq!(location.to_string(), "oci://registry.example:443/a/b");
        assert_eq!(
            location.credentials,
            Some(Credentials {
                username: "user".into(),
                password: "p@ss".into()
            })
        );
        assert!(!format!("{location:?}").contains("p@ss"));
        assert_eq!(
            parse("oci+http://h:1/r").unwrap().to_string(),
            "oci+http://h:1/r"
        );
    }

    #[test]
    fn the_same_store_ignores_credentials_and_an_implied_scheme() {
        let a = parse("oci://u:p@127.0.0.1:5000/cairn").unwrap();
        let b = parse("oci+http://127.0.0.1:5000/cairn/").unwrap();
        assert!(a.same_store(&b));
        let c = parse("oci+https://127.0.0.1:5000/cairn").unwrap();
        assert!(!a.same_store(&c));
        let d = parse("oci://127.0.0.1:5000/other").unwrap();
        assert!(!a.same_store(&d));
    }

    #[test]
    fn malformed_locations_are_typed_errors() {
        assert!(matches!(
            parse("s3://bucket/x"),
            Err(OciLocationError::UnknownScheme(_))
        ));
        assert!(matches!(
            parse("oci:///repo"),
            Err(OciLocationError::MissingHost(_))
        ));
        assert!(matches!(
            parse("oci://host:99999/repo"),
            Err(OciLocationError::BadPort(_))
        ));
        assert!(matches!(
            parse("oci://host"),
            Err(OciLocationError::MissingRepository(_))
        ));
        assert!(matches!(
            parse("oci://host/Upper"),
            Err(OciLocationError::BadRepository(_))
        ));
        assert!(matches!(
            parse("oci://host/a//b"),
            Err(OciLocationError::BadRepository(_))
        ));
        assert!(matches!(
            parse("oci://host/repo?x=1"),
            Err(OciLocationError::QueryOrFragment(_))
        ));
        assert!(matches!(
            parse("oci://u:%zz@host/repo"),
            Err(OciLocationError::BadUserinfo)
        ));
        assert!(matches!(
            parse("oci://ho st/repo"),
            Err(OciLocationError::BadHost(_))
        ));
        let error = parse("oci://user:secret@host").unwrap_err().to_string();
        assert!(!error.contains("secret"), "{error}");
    }

    #[test]
    fn repository_names_follow_the_distribution_grammar() {
        for good in ["a", "cairn/content", "a.b_c__d---e/f0", "x/y/z"] {
            assert!(is_repository_name(good), "{good}");
        }
        for bad in ["", "-a", "a-", "a..b", "a___b", "a/", "A", "a b"] {
            assert!(!is_repository_name(bad), "{bad}");
        }
    }

    #[test]
    fn credentials_are_redacted_in_every_error_however_they_are_written() {
        assert_eq!(
            redact_credentials("oci://u:pa/ss@host/repo"),
            "oci://***@host/repo"
        );
        assert_eq!(redact_credentials("https://u:pw@h/r"), "https://***@h/r");
        assert_eq!(redact_credentials("oci:/u:pw@h/r"), "oci:/***@h/r");
        assert_eq!(redact_credentials("u:pw@h/r"), "***@h/r");
        assert_eq!(redact_credentials("oci://h/r"), "oci://h/r");
        for text in [
            "https://u:secret@h/r",
            "ftp://u:secret@h/r",
            "oci:/u:secret@h/r",
            "oci:u:secret@h/r",
            "oci+ftp://u:secret@h/r",
            // An unencoded `/` ends the authority early: the rest used to show.
            "oci://u:sec/ret@host/repo",
            "oci://u:sec/ret@host:99999/repo",
            "oci://u:sec:ret/x@host/repo",
            "oci://u:sec?ret@host/repo",
            "oci://u:secret@host",
            "oci://u:secret@ho st/repo",
            "oci://u:secret@host/Upper",
        ] {
            let error = parse(text).unwrap_err();
            for shown in [error.to_string(), format!("{error:?}")] {
                assert!(
                    !shown.contains("secret") && !shown.contains("sec/") && !shown.contains("ret"),
                    "{text}: {shown}"
                );
            }
        }
        assert!(matches!(
            parse("oci://u:pa/ss@host/repo"),
            Err(OciLocationError::UnencodedUserinfo(_))
        ));
    }

    #[test]
    fn schemes_are_case_insensitive() {
        let location = parse("OCI+HTTP://u:p@Host:5000/repo").unwrap();
        assert_eq!(location.to_string(), "oci+http://host:5000/repo");
        assert!(location.same_store(&parse("oci+http://host:5000/repo").unwrap()));
        assert_eq!(parse("Oci://h/r").unwrap().to_string(), "oci://h/r");
        assert!(is_oci_location("OCI:/x") && is_oci_location("oci+ftp://x"));
        assert!(!is_oci_location("ocifs/x") && !is_oci_location("/oci:x"));
    }
}
