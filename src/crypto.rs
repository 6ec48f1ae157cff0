//! Secrets at rest: AES-256-GCM with `crypto.key`, a fresh nonce per value.

use aes_gcm::{
    aead::{Aead, KeyInit},
    Aes256Gcm, Nonce,
};
use base64::{engine::general_purpose::STANDARD, Engine};
use rand::RngCore;

#[derive(Clone)]
pub struct Cipher(Aes256Gcm);

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(..)")
    }
}

const NONCE_LEN: usize = 12;

impl Cipher {
    pub fn new(key: &[u8; 32]) -> Self {
        Self(Aes256Gcm::new(key.into()))
    }

    /// `base64(nonce || ciphertext)`.
    pub fn encrypt(&self, plain: &str) -> anyhow::Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = self
            .0
            .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
            .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(STANDARD.encode(out))
    }

    pub fn decrypt(&self, stored: &str) -> anyhow::Result<String> {
        let bytes = STANDARD.decode(stored)?;
        if bytes.len() < NONCE_LEN {
            anyhow::bail!("stored secret is too short");
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = self
            .0
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| anyhow::anyhow!("decryption failed: wrong crypto.key?"))?;
        Ok(String::from_utf8(plain)?)
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
}
