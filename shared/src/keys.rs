//! Key names. Tenant names, namespaces and run ids come from clients, so they are hashed, never
//! spliced into a key: no client string can reach another tenant's key or break the layout.

use sha2::{Digest, Sha256};

/// `prefix:kind:` and 32 hex digits of the SHA-256 of the parts (each length-prefixed, so no
/// two lists of parts hash alike by shifting bytes between them).
pub fn hashed(prefix: &str, kind: &str, parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    format!("{prefix}:{kind}:{}", hex(&digest[..16]))
}

/// Like [`hashed`], with the digest in braces: a Redis hash tag, so keys made from this one by a
/// suffix (`…:leases`) live in the same cluster slot and one script may use them together.
pub fn tagged(prefix: &str, kind: &str, parts: &[&[u8]]) -> String {
    let plain = hashed(prefix, kind, parts);
    let digest = plain.len() - 32;
    format!("{}{{{}}}", &plain[..digest], &plain[digest..])
}

/// The key of an answer stored under a 32-byte exact cache key (already a hash of tenant,
/// namespace, scope and request).
pub fn answer(prefix: &str, exact: &[u8; 32]) -> String {
    format!("{prefix}:answer:{}", hex(exact))
}

/// The stream of semantic entries.
pub fn semantic_stream(prefix: &str) -> String {
    format!("{prefix}:semantic")
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_strings_cannot_collide_or_escape_the_prefix() {
        let a = hashed("p", "budget", &[b"ten:ant", b"1"]);
        let b = hashed("p", "budget", &[b"ten", b"ant:1"]);
        assert_ne!(a, b);
        assert!(a.starts_with("p:budget:") && a.len() == "p:budget:".len() + 32);
        assert_eq!(answer("p", &[0xab; 32]).len(), "p:answer:".len() + 64);
        let tagged = tagged("p", "run", &[b"x"]);
        assert_eq!(
            tagged,
            format!("p:run:{{{}}}", &hashed("p", "run", &[b"x"])[6..])
        );
    }
}
