//! Change notifications that include resource data: our encryption key and the
//! decryption of `encryptedContent`.
//!
//! <https://learn.microsoft.com/graph/change-notifications-with-resource-data>
//! (protocols/teams.md §3, "Encrypted resource data"):
//!
//! - The subscription carries `includeResourceData: true`,
//!   `encryptionCertificate` (base64 DER X.509 certificate with an RSA public
//!   key of 2048–4096 bits; self-signed is fine) and `encryptionCertificateId`
//!   (at most 128 characters) — [`NotificationKey::subscription_fields`].
//! - Each notification's `encryptedContent` holds `dataKey`, a random 32-byte
//!   symmetric key wrapped with RSA-OAEP (SHA-1, MGF1-SHA-1); `data`, the
//!   resource JSON encrypted with AES-256-CBC, PKCS7 padding and the first 16
//!   bytes of the symmetric key as IV; and `dataSignature`, HMAC-SHA256 of the
//!   `data` bytes keyed with the symmetric key. [`decrypt`] checks the
//!   signature (in constant time) before it decrypts anything.
//!
//! The key pair is ours: [`NotificationKey::generate`] makes one with a
//! self-signed certificate, [`NotificationKey::to_pem`] /
//! [`NotificationKey::from_pem`] keep it in a file across restarts (PKCS#8
//! private key, then the certificate). The certificate id is derived from the
//! public key, so it stays the same across restarts.
//!
//! Not done here: validating the `validationTokens` JWTs of the batch
//! (Microsoft-signed; `aud` = our app id).
//!
//! RSA decryption in the `rsa` crate (0.9) is not guaranteed constant-time
//! (RUSTSEC-2023-0071, the "Marvin" timing attack). Anyone who can reach the
//! notification URL can submit a `dataKey`, so callers should answer the POST
//! (202) before decrypting, and decrypt only items whose `clientState`
//! matched: the response time then does not depend on the decryption.

use aes::Aes256;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::rand_core::{OsRng, RngCore};
use rsa::signature::{SignatureEncoding, Signer};
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use x509_cert::der::asn1::{BitString, GeneralizedTime, UtcTime};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{Any, DateTime, Decode, Encode};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, TbsCertificate, Version};

use super::EncryptedContent;

/// Size of the generated RSA key.
pub const KEY_BITS: usize = 2048;
/// How long a generated certificate is valid.
pub const CERTIFICATE_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Subject and issuer of the generated certificate.
const SUBJECT: &str = "CN=Switchboard Teams change notifications";
/// `sha256WithRSAEncryption` (RFC 4055).
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const PRIVATE_KEY_LABEL: &str = "PRIVATE KEY";
const CERTIFICATE_LABEL: &str = "CERTIFICATE";

/// Why a key could not be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// RSA key generation or signing failed.
    #[error("RSA: {0}")]
    Rsa(String),
    /// The certificate could not be built or parsed.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The PEM text holds no PKCS#8 `PRIVATE KEY`, or it is not an RSA key.
    #[error("PEM: {0}")]
    Pem(String),
    /// The certificate in the PEM text is for another key.
    #[error("the certificate does not belong to the private key")]
    CertificateMismatch,
    /// The key file could not be read or written.
    #[error("key file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// Our key pair for notifications with resource data, with its self-signed
/// certificate. `Debug` shows the certificate id and thumbprint only.
#[derive(Clone)]
pub struct NotificationKey {
    private: RsaPrivateKey,
    certificate_der: Vec<u8>,
    certificate_id: String,
}

impl fmt::Debug for NotificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotificationKey")
            .field("certificate_id", &self.certificate_id)
            .field("thumbprint", &self.thumbprint())
            .finish_non_exhaustive()
    }
}

impl NotificationKey {
    /// A fresh RSA-2048 key pair and a self-signed certificate for it.
    pub fn generate() -> Result<Self, KeyError> {
        let private =
            RsaPrivateKey::new(&mut OsRng, KEY_BITS).map_err(|e| KeyError::Rsa(e.to_string()))?;
        Self::with_new_certificate(private)
    }

    /// Reads what [`NotificationKey::to_pem`] wrote: a PKCS#8 `PRIVATE KEY`
    /// block and, optionally, the `CERTIFICATE` block. Without a certificate
    /// a new one is issued (same key, so the same certificate id).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let key_block = pem_block(pem, PRIVATE_KEY_LABEL)
            .ok_or_else(|| KeyError::Pem("no PRIVATE KEY block".into()))?;
        let private =
            RsaPrivateKey::from_pkcs8_pem(&key_block).map_err(|e| KeyError::Pem(e.to_string()))?;
        let Some(cert_block) = pem_block(pem, CERTIFICATE_LABEL) else {
            return Self::with_new_certificate(private);
        };
        let der = pem_body(&cert_block)
            .ok_or_else(|| KeyError::Pem("the CERTIFICATE block is not base64".into()))?;
        let cert = Certificate::from_der(&der).map_err(|e| KeyError::Certificate(e.to_string()))?;
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| KeyError::Certificate(e.to_string()))?;
        if spki != public_key_der(&private.to_public_key())? {
            return Err(KeyError::CertificateMismatch);
        }
        Ok(Self {
            certificate_id: certificate_id(&spki),
            private,
            certificate_der: der,
        })
    }

    /// The PKCS#8 private key and the certificate, PEM-encoded. The text is
    /// secret: store it with restrictive permissions.
    pub fn to_pem(&self) -> Result<String, KeyError> {
        let key = self
            .private
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| KeyError::Pem(e.to_string()))?;
        let mut out = String::with_capacity(key.len() + self.certificate_der.len() * 2);
        out.push_str(&key);
        out.push_str(&format!("-----BEGIN {CERTIFICATE_LABEL}-----\n"));
        let b64 = B64.encode(&self.certificate_der);
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str(&format!("-----END {CERTIFICATE_LABEL}-----\n"));
        Ok(out)
    }

    /// The key in `path`, or a new one written there (created with mode
    /// 0600, never overwritten) when the file does not exist.
    pub fn load_or_create(path: &std::path::Path) -> Result<Self, KeyError> {
        let file_error = |e: std::io::Error| KeyError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        match std::fs::read_to_string(path) {
            Ok(pem) => return Self::from_pem(&pem),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(file_error(e)),
            Err(_) => {}
        }
        let key = Self::generate()?;
        let pem = key.to_pem()?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(file_error)?;
        std::io::Write::write_all(&mut file, pem.as_bytes()).map_err(file_error)?;
        file.sync_all().map_err(file_error)?;
        Ok(key)
    }

    /// `encryptionCertificate`: the certificate, base64 DER.
    pub fn certificate_base64(&self) -> String {
        B64.encode(&self.certificate_der)
    }

    /// `encryptionCertificateId`: `switchboard-` and 32 hex digits of the
    /// SHA-256 of the public key (45 characters).
    pub fn certificate_id(&self) -> &str {
        &self.certificate_id
    }

    /// Upper-case hex SHA-1 of the certificate, as Graph sends it in
    /// `encryptionCertificateThumbprint`.
    pub fn thumbprint(&self) -> String {
        hex_upper(&Sha1::digest(&self.certificate_der))
    }

    /// The fields to add to a subscription request (`POST /subscriptions`).
    pub fn subscription_fields(&self) -> Value {
        json!({
            "includeResourceData": true,
            "encryptionCertificate": self.certificate_base64(),
            "encryptionCertificateId": self.certificate_id,
        })
    }

    fn with_new_certificate(private: RsaPrivateKey) -> Result<Self, KeyError> {
        let spki = public_key_der(&private.to_public_key())?;
        let certificate_der = self_signed(&private, &spki)?;
        Ok(Self {
            certificate_id: certificate_id(&spki),
            private,
            certificate_der,
        })
    }
}

/// Why an `encryptedContent` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// `encryptionCertificateId` names a certificate that is not ours.
    #[error("encrypted for an unknown certificate id {0:?}")]
    UnknownCertificate(String),
    /// A field is not valid base64.
    #[error("{0} is not valid base64")]
    Base64(&'static str),
    /// `dataKey` could not be decrypted with our key (another key, or damaged).
    #[error("the data key could not be unwrapped")]
    KeyUnwrap,
    /// No `dataSignature`: unsigned data is refused.
    #[error("dataSignature is missing")]
    MissingSignature,
    /// `dataSignature` does not match `data`.
    #[error("dataSignature does not match the data")]
    SignatureMismatch,
    /// The decrypted data has invalid padding (or a bad length).
    #[error("the decrypted data has invalid padding")]
    Padding,
    /// The decrypted data is not JSON.
    #[error("the decrypted data is not JSON: {0}")]
    NotJson(String),
}

/// Decrypts a notification's `encryptedContent` into the resource (for Teams
/// messages, the chatMessage as `GET` returns it). The HMAC is checked, in
/// constant time, before the data is decrypted.
pub fn decrypt(content: &EncryptedContent, key: &NotificationKey) -> Result<Value, DecryptError> {
    if let Some(id) = &content.encryption_certificate_id
        && id != key.certificate_id()
    {
        return Err(DecryptError::UnknownCertificate(id.clone()));
    }
    let data_key = B64
        .decode(content.data_key.trim())
        .map_err(|_| DecryptError::Base64("dataKey"))?;
    let signature = content
        .data_signature
        .as_deref()
        .ok_or(DecryptError::MissingSignature)?;
    let signature = B64
        .decode(signature.trim())
        .map_err(|_| DecryptError::Base64("dataSignature"))?;
    let mut data = B64
        .decode(content.data.trim())
        .map_err(|_| DecryptError::Base64("data"))?;
    let symmetric = key
        .private
        .decrypt(Oaep::new::<Sha1>(), &data_key)
        .map_err(|_| DecryptError::KeyUnwrap)?;
    if symmetric.len() != 32 {
        return Err(DecryptError::KeyUnwrap);
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(&symmetric).map_err(|_| DecryptError::KeyUnwrap)?;
    mac.update(&data);
    mac.verify_slice(&signature)
        .map_err(|_| DecryptError::SignatureMismatch)?;
    let iv = symmetric.get(..16).ok_or(DecryptError::KeyUnwrap)?;
    let plain = cbc::Decryptor::<Aes256>::new_from_slices(&symmetric, iv)
        .map_err(|_| DecryptError::KeyUnwrap)?
        .decrypt_padded_mut::<Pkcs7>(&mut data)
        .map_err(|_| DecryptError::Padding)?;
    serde_json::from_slice(plain).map_err(|e| DecryptError::NotJson(e.to_string()))
}

/// The DER `SubjectPublicKeyInfo` of a key.
fn public_key_der(public: &RsaPublicKey) -> Result<Vec<u8>, KeyError> {
    public
        .to_public_key_der()
        .map(|d| d.as_bytes().to_vec())
        .map_err(|e| KeyError::Certificate(e.to_string()))
}

/// `switchboard-` and the first 16 bytes of SHA-256(SPKI), in hex.
fn certificate_id(spki_der: &[u8]) -> String {
    let digest = Sha256::digest(spki_der);
    format!(
        "switchboard-{}",
        hex_upper(digest.get(..16).unwrap_or(&digest)).to_ascii_lowercase()
    )
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// A self-signed X.509 v3 certificate (sha256WithRSAEncryption, no
/// extensions), DER.
fn self_signed(private: &RsaPrivateKey, spki_der: &[u8]) -> Result<Vec<u8>, KeyError> {
    let cert_err = |e: x509_cert::der::Error| KeyError::Certificate(e.to_string());
    let name = Name::from_str(SUBJECT).map_err(cert_err)?;
    let mut serial = [0u8; 16];
    OsRng.fill_bytes(&mut serial);
    serial[0] = (serial[0] & 0x7f) | 0x40; // positive, no leading zero
    let algorithm = AlgorithmIdentifierOwned {
        oid: SHA256_WITH_RSA,
        parameters: Some(Any::null()),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| KeyError::Certificate(e.to_string()))?;
    // An hour of slack for clocks that are a little behind.
    let not_before = now.saturating_sub(Duration::from_secs(3600));
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&serial).map_err(cert_err)?,
        signature: algorithm.clone(),
        issuer: name.clone(),
        validity: Validity {
            not_before: x509_time(not_before)?,
            not_after: x509_time(now + CERTIFICATE_LIFETIME)?,
        },
        subject: name,
        subject_public_key_info: SubjectPublicKeyInfoOwned::from_der(spki_der).map_err(cert_err)?,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: None,
    };
    let tbs_der = tbs.to_der().map_err(cert_err)?;
    let signer = SigningKey::<Sha256>::new(private.clone());
    let signature = signer
        .try_sign(&tbs_der)
        .map_err(|e| KeyError::Rsa(e.to_string()))?;
    let cert = Certificate {
        tbs_certificate: tbs,
        signature_algorithm: algorithm,
        signature: BitString::from_bytes(&signature.to_vec()).map_err(cert_err)?,
    };
    cert.to_der().map_err(cert_err)
}

/// RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
fn x509_time(since_epoch: Duration) -> Result<Time, KeyError> {
    let cert_err = |e: x509_cert::der::Error| KeyError::Certificate(e.to_string());
    let dt = DateTime::from_unix_duration(Duration::from_secs(since_epoch.as_secs()))
        .map_err(cert_err)?;
    if dt.year() < 2050 {
        Ok(Time::UtcTime(
            UtcTime::from_date_time(dt).map_err(cert_err)?,
        ))
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_date_time(dt)))
    }
}

/// The whole `-----BEGIN label-----` … `-----END label-----` block of `pem`.
fn pem_block(pem: &str, label: &str) -> Option<String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)?;
    let stop = pem.get(start..)?.find(&end)? + start + end.len();
    Some(format!("{}\n", pem.get(start..stop)?))
}

/// The base64 body of a PEM block, decoded.
fn pem_body(block: &str) -> Option<Vec<u8>> {
    let body: String = block
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.chars().filter(|c| !c.is_ascii_whitespace()))
        .collect();
    B64.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbc::cipher::BlockEncryptMut;
    use proptest::prelude::*;
    use rsa::rand_core::RngCore;
    use std::sync::OnceLock;

    /// One generated key for all tests (RSA key generation is slow in debug builds).
    fn key() -> &'static NotificationKey {
        static KEY: OnceLock<NotificationKey> = OnceLock::new();
        KEY.get_or_init(|| NotificationKey::generate().expect("generate"))
    }

    /// Encrypts as Graph does (test-side, independent of `decrypt`).
    fn encrypt(resource: &Value, key: &NotificationKey) -> EncryptedContent {
        let mut sym = [0u8; 32];
        OsRng.fill_bytes(&mut sym);
        let public = key.private.to_public_key();
        let data_key = public
            .encrypt(&mut OsRng, Oaep::new::<Sha1>(), &sym)
            .expect("wrap");
        let plain = serde_json::to_vec(resource).expect("json");
        let mut buf = vec![0u8; plain.len() + 16];
        buf[..plain.len()].copy_from_slice(&plain);
        let data = cbc::Encryptor::<Aes256>::new_from_slices(&sym, &sym[..16])
            .expect("aes")
            .encrypt_padded_mut::<Pkcs7>(&mut buf, plain.len())
            .expect("pad")
            .to_vec();
        let mut mac = Hmac::<Sha256>::new_from_slice(&sym).expect("hmac");
        mac.update(&data);
        EncryptedContent {
            data: B64.encode(&data),
            data_key: B64.encode(data_key),
            data_signature: Some(B64.encode(mac.finalize().into_bytes())),
            encryption_certificate_id: Some(key.certificate_id().to_owned()),
            encryption_certificate_thumbprint: Some(key.thumbprint()),
        }
    }

    fn message() -> Value {
        json!({"id": "1612289992105", "body": {"contentType": "html", "content": "<p>héllo</p>"}})
    }

    #[test]
    fn round_trip() {
        let k = key();
        let ec = encrypt(&message(), k);
        assert_eq!(decrypt(&ec, k), Ok(message()));
        // Without a certificate id, our key is tried.
        let ec = EncryptedContent {
            encryption_certificate_id: None,
            ..ec
        };
        assert_eq!(decrypt(&ec, k), Ok(message()));
    }

    #[test]
    fn certificate_is_self_signed_rsa_2048() {
        let k = key();
        let der = B64.decode(k.certificate_base64()).expect("base64");
        let cert = Certificate::from_der(&der).expect("X.509");
        assert_eq!(cert.tbs_certificate.issuer, cert.tbs_certificate.subject);
        assert_eq!(cert.signature_algorithm.oid, SHA256_WITH_RSA);
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .expect("spki");
        let public =
            <RsaPublicKey as rsa::pkcs8::DecodePublicKey>::from_public_key_der(&spki).expect("rsa");
        assert_eq!(rsa::traits::PublicKeyParts::size(&public) * 8, KEY_BITS);
        // The signature verifies with the certificate's own key.
        let verifier = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(public);
        let sig = rsa::pkcs1v15::Signature::try_from(cert.signature.raw_bytes()).expect("sig");
        let tbs = cert.tbs_certificate.to_der().expect("tbs");
        rsa::signature::Verifier::verify(&verifier, &tbs, &sig).expect("self-signed");
        assert!(k.certificate_id().len() <= 128);
        assert!(k.certificate_id().starts_with("switchboard-"));
        assert_eq!(k.thumbprint().len(), 40);
        let f = k.subscription_fields();
        assert_eq!(f["includeResourceData"], true);
        assert_eq!(f["encryptionCertificateId"], k.certificate_id());
        // Debug does not show the private key.
        let dbg = format!("{k:?}");
        assert!(dbg.contains(k.certificate_id()) && !dbg.contains("BigUint"));
    }

    #[test]
    fn pem_round_trip_keeps_key_certificate_and_id() {
        let k = key();
        let pem = k.to_pem().expect("pem");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let back = NotificationKey::from_pem(&pem).expect("read");
        assert_eq!(back.certificate_id(), k.certificate_id());
        assert_eq!(back.certificate_base64(), k.certificate_base64());
        assert_eq!(decrypt(&encrypt(&message(), k), &back), Ok(message()));
        // Without the certificate: same key and id, a new certificate.
        let key_only = pem_block(&pem, PRIVATE_KEY_LABEL).expect("block");
        let again = NotificationKey::from_pem(&key_only).expect("read");
        assert_eq!(again.certificate_id(), k.certificate_id());
        assert!(matches!(
            NotificationKey::from_pem("nothing here"),
            Err(KeyError::Pem(_))
        ));
        assert!(matches!(
            NotificationKey::from_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            ),
            Err(KeyError::Pem(_))
        ));
    }

    #[test]
    fn certificate_of_another_key_is_refused() {
        let k = key();
        let other = NotificationKey::generate().expect("generate");
        let pem = k.to_pem().expect("pem");
        let mixed = format!(
            "{}{}",
            pem_block(&pem, PRIVATE_KEY_LABEL).expect("key"),
            pem_block(&other.to_pem().expect("pem"), CERTIFICATE_LABEL).expect("cert")
        );
        assert!(matches!(
            NotificationKey::from_pem(&mixed),
            Err(KeyError::CertificateMismatch)
        ));
        // Content for `k` does not decrypt with `other`.
        let ec = EncryptedContent {
            encryption_certificate_id: None,
            ..encrypt(&message(), k)
        };
        assert_eq!(decrypt(&ec, &other), Err(DecryptError::KeyUnwrap));
        let ec = encrypt(&message(), k);
        assert!(matches!(
            decrypt(&ec, &other),
            Err(DecryptError::UnknownCertificate(_))
        ));
    }

    #[test]
    fn tampering_is_detected_before_decryption() {
        let k = key();
        let ec = encrypt(&message(), k);
        let mut data = B64.decode(&ec.data).expect("b64");
        data[0] ^= 1;
        let tampered = EncryptedContent {
            data: B64.encode(&data),
            ..ec.clone()
        };
        assert_eq!(decrypt(&tampered, k), Err(DecryptError::SignatureMismatch));
        let unsigned = EncryptedContent {
            data_signature: None,
            ..ec.clone()
        };
        assert_eq!(decrypt(&unsigned, k), Err(DecryptError::MissingSignature));
        let bad = |f: fn(&mut EncryptedContent)| {
            let mut e = ec.clone();
            f(&mut e);
            decrypt(&e, k)
        };
        assert_eq!(
            bad(|e| e.data = "%%".into()),
            Err(DecryptError::Base64("data"))
        );
        assert_eq!(
            bad(|e| e.data_key = "%%".into()),
            Err(DecryptError::Base64("dataKey"))
        );
        assert_eq!(
            bad(|e| e.data_signature = Some("%%".into())),
            Err(DecryptError::Base64("dataSignature"))
        );
        assert_eq!(
            bad(|e| e.data_key = B64.encode([7u8; 256])),
            Err(DecryptError::KeyUnwrap)
        );
    }

    /// Correctly signed, but the plaintext is not JSON / the padding is wrong.
    #[test]
    fn padding_and_json_errors() {
        let k = key();
        let mut sym = [0u8; 32];
        OsRng.fill_bytes(&mut sym);
        let sign = |data: &[u8]| {
            let mut mac = Hmac::<Sha256>::new_from_slice(&sym).expect("hmac");
            mac.update(data);
            B64.encode(mac.finalize().into_bytes())
        };
        let wrap = B64.encode(
            k.private
                .to_public_key()
                .encrypt(&mut OsRng, Oaep::new::<Sha1>(), &sym)
                .expect("wrap"),
        );
        let enc = |plain: &[u8], pad: bool| -> Vec<u8> {
            let c = cbc::Encryptor::<Aes256>::new_from_slices(&sym, &sym[..16]).expect("aes");
            let mut buf = vec![0u8; plain.len() + 16];
            buf[..plain.len()].copy_from_slice(plain);
            if pad {
                c.encrypt_padded_mut::<Pkcs7>(&mut buf, plain.len())
                    .expect("pad")
                    .to_vec()
            } else {
                c.encrypt_padded_mut::<cbc::cipher::block_padding::NoPadding>(
                    &mut buf[..plain.len()],
                    plain.len(),
                )
                .expect("no pad")
                .to_vec()
            }
        };
        let content = |data: Vec<u8>| EncryptedContent {
            data: B64.encode(&data),
            data_key: wrap.clone(),
            data_signature: Some(sign(&data)),
            encryption_certificate_id: None,
            encryption_certificate_thumbprint: None,
        };
        assert!(matches!(
            decrypt(&content(enc(b"not json", true)), k),
            Err(DecryptError::NotJson(_))
        ));
        // 16 bytes ending in 0x00: not PKCS7.
        assert_eq!(
            decrypt(&content(enc(&[0u8; 16], false)), k),
            Err(DecryptError::Padding)
        );
        // Not a whole number of blocks.
        assert_eq!(
            decrypt(&content(vec![1, 2, 3]), k),
            Err(DecryptError::Padding)
        );
        assert_eq!(decrypt(&content(Vec::new()), k), Err(DecryptError::Padding));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Arbitrary input gives an error, never a panic.
        #[test]
        fn arbitrary_input_never_panics(
            data in ".{0,64}",
            data_key in prop_oneof![".{0,64}".prop_map(|s| s), proptest::collection::vec(any::<u8>(), 256).prop_map(|b| B64.encode(b))],
            sig in proptest::option::of(".{0,64}"),
            id in proptest::option::of(".{0,8}"),
            raw_data in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let k = key();
            let ec = EncryptedContent {
                data: data.clone(),
                data_key: data_key.clone(),
                data_signature: sig.clone(),
                encryption_certificate_id: id,
                encryption_certificate_thumbprint: None,
            };
            prop_assert!(decrypt(&ec, k).is_err());
            let ec = EncryptedContent {
                data: B64.encode(&raw_data),
                data_key,
                data_signature: sig,
                encryption_certificate_id: Some(k.certificate_id().to_owned()),
                encryption_certificate_thumbprint: None,
            };
            prop_assert!(decrypt(&ec, k).is_err());
        }
    }
}
