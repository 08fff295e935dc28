//! Package names and namespaces with warg's exact rules.
//!
//! A package name is `<namespace>:<name>`, split at the last `:`. Both parts are lowercase
//! kebab-case: words separated by single `-`, each word an ASCII lowercase letter followed by
//! lowercase letters and digits (`[a-z][a-z0-9]*(-[a-z][a-z0-9]*)*`).

use std::fmt;
use std::str::FromStr;

use crate::digest::text_serde;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// No `:` between namespace and name.
    #[error("package name {0:?} must have the form `namespace:name`")]
    MissingColon(String),
    /// A part is not lowercase kebab-case.
    #[error("{what} {text:?} is not lowercase kebab-case (words of a-z and 0-9, each starting with a letter, joined by `-`)")]
    NotKebab {
        /// "namespace" or "name".
        what: &'static str,
        /// The offending text.
        text: String,
    },
}

/// Whether `text` is lowercase kebab-case.
pub fn is_lower_kebab(text: &str) -> bool {
    !text.is_empty()
        && text.split('-').all(|word| {
            let mut bytes = word.bytes();
            matches!(bytes.next(), Some(b'a'..=b'z'))
                && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

fn clip(text: &str) -> String {
    text.chars().take(100).collect()
}

/// A namespace: lowercase kebab-case.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(String);

impl Namespace {
    /// The namespace text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Namespace {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl FromStr for Namespace {
    type Err = NameError;
    fn from_str(text: &str) -> Result<Self, NameError> {
        if is_lower_kebab(text) {
            Ok(Namespace(text.to_owned()))
        } else {
            Err(NameError::NotKebab {
                what: "namespace",
                text: clip(text),
            })
        }
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Namespace({})", self.0)
    }
}

text_serde!(Namespace);

/// A package name, `namespace:name`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackageName {
    full: String,
    colon: usize,
}

impl PackageName {
    /// The full name, `namespace:name`.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The namespace part.
    pub fn namespace(&self) -> &str {
        &self.full[..self.colon]
    }

    /// The name part.
    pub fn name(&self) -> &str {
        &self.full[self.colon + 1..]
    }

    /// The id of this package's log.
    pub fn log_id(&self) -> crate::LogId {
        crate::LogId::package_log(self)
    }
}

impl FromStr for PackageName {
    type Err = NameError;
    fn from_str(text: &str) -> Result<Self, NameError> {
        let colon = text
            .rfind(':')
            .ok_or_else(|| NameError::MissingColon(clip(text)))?;
        let (namespace, name) = (&text[..colon], &text[colon + 1..]);
        if !is_lower_kebab(namespace) {
            return Err(NameError::NotKebab {
                what: "namespace",
                text: clip(namespace),
            });
        }
        if !is_lower_kebab(name) {
            return Err(NameError::NotKebab {
                what: "name",
                text: clip(name),
            });
        }
        Ok(PackageName {
            full: text.to_owned(),
            colon,
        })
    }
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PackageName({})", self.full)
    }
}

text_serde!(PackageName);
