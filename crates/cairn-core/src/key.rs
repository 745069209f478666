//! Validated keys, key prefixes and tenant ids.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};

/// Longest key accepted, in UTF-8 bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Longest tenant id accepted, in bytes.
pub const MAX_TENANT_BYTES: usize = 128;

/// A validated storage key: non-empty UTF-8, at most [`MAX_KEY_BYTES`] bytes, no NUL.
///
/// Keys order as their UTF-8 bytes on every backend, so scans page identically everywhere.
/// Cloning a key is a reference-count increment.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(Arc<str>);

impl Key {
    /// Validates `key`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when the key is empty, longer
    /// than [`MAX_KEY_BYTES`] or contains a NUL character.
    pub fn new(key: impl Into<String>) -> Result<Key> {
        let key = key.into();
        if key.is_empty() {
            return Err(Error::invalid_input("key must not be empty"));
        }
        check_text(&key, "key")?;
        Ok(Key(Arc::from(key)))
    }

    /// The key as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key's UTF-8 bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Whether the key starts with `prefix`.
    pub fn starts_with(&self, prefix: &str) -> bool {
        self.0.starts_with(prefix)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Key {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Key {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for Key {
    type Error = Error;
    fn try_from(value: &str) -> Result<Key> {
        Key::new(value)
    }
}

impl TryFrom<String> for Key {
    type Error = Error;
    fn try_from(value: String) -> Result<Key> {
        Key::new(value)
    }
}

/// Checks a scan or listing prefix: at most [`MAX_KEY_BYTES`] bytes and no NUL. The empty
/// prefix is valid and matches every key.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when the prefix breaks a rule.
pub fn check_prefix(prefix: &str) -> Result<()> {
    check_text(prefix, "prefix")
}

fn check_text(text: &str, what: &'static str) -> Result<()> {
    if text.len() > MAX_KEY_BYTES {
        return Err(Error::invalid_input(format!(
            "{what} is {} bytes, the limit is {MAX_KEY_BYTES}",
            text.len()
        )));
    }
    if text.contains('\0') {
        return Err(Error::invalid_input(format!(
            "{what} must not contain a NUL character"
        )));
    }
    Ok(())
}

/// The smallest string greater than every string that starts with `prefix`, in UTF-8 byte
/// order; `None` when no such bound exists (empty prefix, or only `char::MAX` characters).
///
/// Backends turn a prefix scan into the range `prefix <= key < bound`.
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = next_char(last) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn next_char(c: char) -> Option<char> {
    match c {
        '\u{D7FF}' => Some('\u{E000}'),
        char::MAX => None,
        c => char::from_u32(c as u32 + 1),
    }
}

/// A validated tenant id: 1 to [`MAX_TENANT_BYTES`] bytes of ASCII letters, digits and
/// `-` `_` `.` `:` `@`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TenantId(String);

impl TenantId {
    /// The tenant a backend handle is scoped to when it is opened.
    pub const DEFAULT: &'static str = "default";

    /// Validates `id`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when the id is empty, too
    /// long or has a character outside the allowed set.
    pub fn new(id: impl Into<String>) -> Result<TenantId> {
        let id = id.into();
        if id.is_empty() || id.len() > MAX_TENANT_BYTES {
            return Err(Error::invalid_input(format!(
                "tenant id must be 1 to {MAX_TENANT_BYTES} bytes, got {}",
                id.len()
            )));
        }
        if let Some(bad) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "-_.:@".contains(*c)))
        {
            return Err(Error::invalid_input(format!(
                "tenant id contains {bad:?}; allowed are ASCII letters, digits and - _ . : @"
            )));
        }
        Ok(TenantId(id))
    }

    /// The default tenant, `"default"`.
    pub fn default_tenant() -> TenantId {
        TenantId(Self::DEFAULT.to_owned())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TenantId {
    fn default() -> Self {
        TenantId::default_tenant()
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for TenantId {
    type Error = Error;
    fn try_from(value: &str) -> Result<TenantId> {
        TenantId::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn key_rules() {
        assert_eq!(Key::new("").unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(
            Key::new("a\0b").unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert!(Key::new("x".repeat(MAX_KEY_BYTES)).is_ok());
        assert_eq!(
            Key::new("x".repeat(MAX_KEY_BYTES + 1)).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(Key::new("ü/%_'").unwrap().as_str(), "ü/%_'");
    }

    #[test]
    fn tenant_rules() {
        assert!(TenantId::new("acme-1_x.y:z@q").is_ok());
        for bad in ["", "a/b", "a b", "ä", "a\0"] {
            assert_eq!(
                TenantId::new(bad).unwrap_err().kind(),
                ErrorKind::InvalidInput,
                "{bad:?}"
            );
        }
        assert!(TenantId::new("t".repeat(MAX_TENANT_BYTES + 1)).is_err());
    }

    #[test]
    fn upper_bound_orders_above_every_prefixed_key() {
        assert_eq!(prefix_upper_bound(""), None);
        assert_eq!(prefix_upper_bound("ab").as_deref(), Some("ac"));
        assert_eq!(
            prefix_upper_bound("a\u{D7FF}").as_deref(),
            Some("a\u{E000}")
        );
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
        let bound = prefix_upper_bound("a\u{7F}").unwrap();
        assert!("a\u{7F}\u{10FFFF}\u{10FFFF}".as_bytes() < bound.as_bytes());
        assert!("a\u{80}".as_bytes() >= bound.as_bytes());
    }

    mod props {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            /// `Key::new` decodes caller text: it accepts exactly the texts the rules allow.
            #[test]
            fn keys_accept_exactly_the_valid_texts(text in "[a\\x00]{0,3}|\\PC{0,40}|x{1020,1030}") {
                let valid = !text.is_empty() && text.len() <= MAX_KEY_BYTES && !text.contains('\0');
                match Key::new(text.as_str()) {
                    Ok(key) => {
                        prop_assert!(valid);
                        prop_assert_eq!(key.as_str(), text.as_str());
                    }
                    Err(err) => {
                        prop_assert!(!valid);
                        prop_assert_eq!(err.kind(), ErrorKind::InvalidInput);
                    }
                }
            }

            /// Every key that starts with a prefix sorts below the prefix's upper bound, and the
            /// bound itself does not start with the prefix.
            #[test]
            fn upper_bound_covers_every_extension(prefix in "\\PC{1,6}", rest in "\\PC{0,6}") {
                if let Some(bound) = prefix_upper_bound(&prefix) {
                    let extended = format!("{prefix}{rest}");
                    prop_assert!(extended.as_bytes() < bound.as_bytes());
                    prop_assert!(!bound.starts_with(&prefix));
                }
            }
        }
    }
}
