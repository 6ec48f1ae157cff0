//! Secrets at rest (instance api keys, outbound webhook secrets): AES-256-GCM with
//! `crypto.key`, a fresh nonce per value. Values sealed with a key listed in
//! `crypto.previous_keys` still open, so the key can be rotated without downtime;
//! `arauto rotate-crypto-key` ([`rotation`]) then re-seals every stored value with the
//! current key.

pub mod rotation;

use aes_gcm::{
    aead::{Aead, KeyInit},
    Aes256Gcm, Nonce,
};
use base64::{engine::general_purpose::STANDARD, Engine};
use rand::RngCore;
use std::sync::Arc;

/// The current key (encrypts and decrypts) and the previous ones (decrypt only, tried in
/// order after the current one).
#[derive(Clone)]
pub struct Cipher {
    current: Aes256Gcm,
    previous: Arc<[Aes256Gcm]>,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cipher(current, {} previous)", self.previous.len())
    }
}

const NONCE_LEN: usize = 12;

/// What [`Cipher::reseal`] found in a stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resealed {
    /// Already sealed with the current key: nothing to write.
    Current,
    /// Sealed with a previous key: the same secret sealed with the current key.
    Rotated(String),
}

impl Cipher {
    /// A cipher with only `key` (no previous keys).
    pub fn new(key: &[u8; 32]) -> Self {
        Self::with_previous(key, &[])
    }

    /// `key` encrypts; `key` then each of `previous` (in order) decrypt.
    pub fn with_previous(key: &[u8; 32], previous: &[[u8; 32]]) -> Self {
        Self {
            current: Aes256Gcm::new(key.into()),
            previous: previous.iter().map(|k| Aes256Gcm::new(k.into())).collect(),
        }
    }

    /// `base64(nonce || ciphertext)`, with the current key.
    pub fn encrypt(&self, plain: &str) -> anyhow::Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = self
            .current
            .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
            .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(STANDARD.encode(out))
    }

    /// The secret in `stored`, opened with the current key or else a previous one. Errors
    /// when it is malformed or no configured key opens it.
    pub fn decrypt(&self, stored: &str) -> anyhow::Result<String> {
        self.open(stored).map(|(plain, _)| plain)
    }

    /// Re-seals `stored` with the current key when a previous key sealed it. Errors like
    /// [`Self::decrypt`].
    pub fn reseal(&self, stored: &str) -> anyhow::Result<Resealed> {
        match self.open(stored)? {
            (_, true) => Ok(Resealed::Current),
            (plain, false) => Ok(Resealed::Rotated(self.encrypt(&plain)?)),
        }
    }

    /// The plain text, and whether the current key opened it (GCM authenticates: a wrong
    /// key fails, it never yields garbage).
    fn open(&self, stored: &str) -> anyhow::Result<(String, bool)> {
        let bytes = STANDARD.decode(stored)?;
        if bytes.len() < NONCE_LEN {
            anyhow::bail!("stored secret is too short");
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::from_slice(nonce);
        let keys = std::iter::once(&self.current).chain(self.previous.iter());
        for (i, key) in keys.enumerate() {
            if let Ok(plain) = key.decrypt(nonce, sealed) {
                return Ok((String::from_utf8(plain)?, i == 0));
            }
        }
        anyhow::bail!("decryption failed: neither crypto.key nor crypto.previous_keys opens it")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_round_trips_and_never_encrypts_the_same_twice() {
        let c = Cipher::new(&[7u8; 32]);
        let a = c.encrypt("api-key").unwrap();
        let b = c.encrypt("api-key").unwrap();
        assert_ne!(a, b);
        assert!(!a.contains("api-key"));
        assert_eq!(c.decrypt(&a).unwrap(), "api-key");
    }

    #[test]
    fn another_key_cannot_decrypt() {
        let a = Cipher::new(&[7u8; 32]).encrypt("api-key").unwrap();
        assert!(Cipher::new(&[8u8; 32]).decrypt(&a).is_err());
    }

    #[test]
    fn a_previous_key_still_decrypts_and_reseals_with_the_current_one() {
        let old = Cipher::new(&[7u8; 32]).encrypt("api-key").unwrap();
        let rotated = Cipher::with_previous(&[8u8; 32], &[[9u8; 32], [7u8; 32]]);
        assert_eq!(rotated.decrypt(&old).unwrap(), "api-key");
        let Resealed::Rotated(new) = rotated.reseal(&old).unwrap() else {
            panic!("a value sealed with a previous key is re-sealed");
        };
        assert_eq!(Cipher::new(&[8u8; 32]).decrypt(&new).unwrap(), "api-key");
        assert_eq!(rotated.reseal(&new).unwrap(), Resealed::Current);
    }

    #[test]
    fn a_value_no_configured_key_opens_is_an_error() {
        let other = Cipher::new(&[1u8; 32]).encrypt("api-key").unwrap();
        let c = Cipher::with_previous(&[8u8; 32], &[[7u8; 32]]);
        assert!(c.decrypt(&other).is_err());
        assert!(c.reseal(&other).is_err());
        assert!(c.reseal("not base64!").is_err());
    }
}
