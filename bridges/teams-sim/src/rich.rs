//! Change notifications that include resource data ("rich" notifications).
//!
//! <https://learn.microsoft.com/graph/change-notifications-with-resource-data> (protocols/teams.md
//! §3, "Encrypted resource data"):
//!
//! * the subscription carries `includeResourceData: true`, `encryptionCertificate` (base64 DER
//!   X.509 certificate holding an RSA public key of 2048–4096 bits) and
//!   `encryptionCertificateId` (at most 128 characters); otherwise the create call fails with 400;
//! * for each notification Graph draws a random 32-byte symmetric key, wraps it with the
//!   certificate's key using RSA-OAEP (SHA-1, MGF1-SHA-1) → `dataKey`, encrypts the resource
//!   JSON with AES-256-CBC, PKCS7 padding and the first 16 bytes of the key as IV → `data`, signs
//!   the ciphertext bytes with HMAC-SHA256 keyed with the symmetric key → `dataSignature`, and
//!   names the certificate by `encryptionCertificateId` and `encryptionCertificateThumbprint`
//!   (hex SHA-1 of the certificate's DER, upper case as Graph's examples show it).
//!
//! Not simulated: the `validationTokens` (JWTs signed by Microsoft) that Graph adds to the
//! body of rich notifications; the simulator sends none. Certificate validity dates are not
//! checked.

use aes::Aes256;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use rsa::pkcs8::DecodePublicKey;
use rsa::rand_core::{OsRng, RngCore};
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPublicKey};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use x509_cert::Certificate;
use x509_cert::der::{Decode, Encode};

/// The longest `encryptionCertificateId`.
pub const MAX_CERTIFICATE_ID_CHARS: usize = 128;
/// The accepted RSA key sizes, in bits.
pub const KEY_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

/// A subscription's encryption certificate.
#[derive(Clone, Debug)]
pub struct Encryption {
    /// `encryptionCertificate` as given (base64 DER).
    pub certificate: String,
    /// `encryptionCertificateId` as given.
    pub certificate_id: String,
    /// Upper-case hex SHA-1 of the certificate's DER.
    pub thumbprint: String,
    key: RsaPublicKey,
}

impl Encryption {
    /// Checks `encryptionCertificate` and `encryptionCertificateId` of a subscription request
    /// with `includeResourceData: true`. The error is the message of Graph's 400.
    pub fn from_request(certificate: Option<&str>, id: Option<&str>) -> Result<Self, String> {
        let certificate = certificate.filter(|c| !c.trim().is_empty()).ok_or(
            "encryptionCertificate is a required property when includeResourceData is true.",
        )?;
        let certificate_id = id.filter(|i| !i.trim().is_empty()).ok_or(
            "encryptionCertificateId is a required property when includeResourceData is true.",
        )?;
        if certificate_id.chars().count() > MAX_CERTIFICATE_ID_CHARS {
            return Err(format!(
                "encryptionCertificateId must be at most {MAX_CERTIFICATE_ID_CHARS} characters."
            ));
        }
        let compact: String = certificate
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = B64
            .decode(compact.as_bytes())
            .map_err(|_| "encryptionCertificate is not valid base64.".to_string())?;
        let cert = Certificate::from_der(&der).map_err(|_| {
            "encryptionCertificate is not a valid DER-encoded X.509 certificate.".to_string()
        })?;
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|_| "encryptionCertificate has an invalid public key.".to_string())?;
        let key = RsaPublicKey::from_public_key_der(&spki).map_err(|_| {
            "The public key of encryptionCertificate must be an RSA key of 2048 to 4096 bits."
                .to_string()
        })?;
        if !KEY_BITS.contains(&(key.size() * 8)) {
            return Err(
                "The public key of encryptionCertificate must be an RSA key of 2048 to 4096 bits."
                    .into(),
            );
        }
        Ok(Self {
            certificate: certificate.to_string(),
            certificate_id: certificate_id.to_string(),
            thumbprint: thumbprint(&der),
            key,
        })
    }

    /// The `encryptedContent` of a notification carrying `resource`.
    pub fn encrypt(&self, resource: &Value) -> Result<Value, String> {
        let plain = serde_json::to_vec(resource).map_err(|e| e.to_string())?;
        let mut sym = [0u8; 32];
        OsRng.fill_bytes(&mut sym);
        let data = aes_cbc_encrypt(&sym, &plain)?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&sym).map_err(|_| "HMAC key rejected".to_string())?;
        mac.update(&data);
        let signature = mac.finalize().into_bytes();
        let data_key = self
            .key
            .encrypt(&mut OsRng, Oaep::new::<Sha1>(), &sym)
            .map_err(|e| format!("RSA-OAEP: {e}"))?;
        Ok(json!({
            "data": B64.encode(&data),
            "dataSignature": B64.encode(signature),
            "dataKey": B64.encode(data_key),
            "encryptionCertificateId": self.certificate_id,
            "encryptionCertificateThumbprint": self.thumbprint,
        }))
    }
}

/// AES-256-CBC with PKCS7 padding; the IV is the first 16 bytes of the key.
fn aes_cbc_encrypt(key: &[u8; 32], plain: &[u8]) -> Result<Vec<u8>, String> {
    let enc = cbc::Encryptor::<Aes256>::new_from_slices(key, &key[..16])
        .map_err(|_| "AES key or IV rejected".to_string())?;
    let mut buf = vec![0u8; plain.len() + 16];
    buf[..plain.len()].copy_from_slice(plain);
    let n = enc
        .encrypt_padded_mut::<Pkcs7>(&mut buf, plain.len())
        .map_err(|_| "AES-CBC padding".to_string())?
        .len();
    buf.truncate(n);
    Ok(buf)
}

/// Upper-case hex SHA-1 of a certificate's DER.
fn thumbprint(der: &[u8]) -> String {
    Sha1::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbc::cipher::BlockDecryptMut;
    use rsa::RsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;

    /// A test key pair (`openssl req -x509 -newkey rsa:2048`), PEM private key + certificate.
    const FIXTURE: &str = include_str!("../tests/fixtures/rich-notifications.pem");
    /// The certificate's SHA-1 fingerprint, as `openssl x509 -fingerprint -sha1` prints it.
    const CERT_2048_SHA1: &str = "EC6A956ECA61791D359E5598AAE37A6C8EA644AD";

    /// The base64 body of the PEM block `label` of [`FIXTURE`].
    fn pem_block(label: &str) -> String {
        FIXTURE
            .lines()
            .skip_while(|l| *l != format!("-----BEGIN {label}-----"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect()
    }

    /// A 1024-bit RSA certificate (too small).
    const CERT_1024: &str = "MIIB/jCCAWegAwIBAgIUbIOm4sLFhg2yWqX9JmYOddqQ60YwDQYJKoZIhvcNAQELBQAwEDEOMAwGA1UEAwwFc21hbGwwIBcNMjYxMTIyMDM0NTMzWhgPMjEyNjEwMjkwMzQ1MzNaMBAxDjAMBgNVBAMMBXNtYWxsMIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDnAfpg4pQ16d0QGKNuNkCZ8B7N0l0+udDqQL0d9D749V1aq1mJWwUcfWY1cWNT9YLTxAKYxeYYpBic67TDwl/yy5dbGwCi/vv2XUd0M6gSDJSmFF3w9iN1eqaRLvRGrw1CwA4vxe7o5/twZTBExDXRuSeEw7PyE+rJw77Dc0ALBQIDAQABo1MwUTAdBgNVHQ4EFgQUKVCC9U2AIGy1a7eq4H5T6XiK+TAwHwYDVR0jBBgwFoAUKVCC9U2AIGy1a7eq4H5T6XiK+TAwDwYDVR0TAQH/BAUwAwEB/zANBgkqhkiG9w0BAQsFAAOBgQBZuZriPGriemTae4Z22lC7ZRSA6w5HTcQxdiiMgSje2lNGxl03w1WvIUqq2VQqeEE9IBEEsgTr6CE080xbUFmxgfLnpJxRJfqmMfX3bgwsxJ+wq8jhlXMq2H5vOJLmpky5Eia7Y+Tcz/WqetQ+GQlZdfLogqiDuRARROXqi9Ef2Q==";
    /// A P-256 certificate (not RSA).
    const CERT_EC: &str = "MIIBcjCCARegAwIBAgIUbPLexxQzQOMTBxiW4nO8dEEczI8wCgYIKoZIzj0EAwIwDTELMAkGA1UEAwwCZWMwIBcNMjYxMTIyMDM0NTMzWhgPMjEyNjEwMjkwMzQ1MzNaMA0xCzAJBgNVBAMMAmVjMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEW0fgDzDWnKCktii3/bm1HKcM3MUryYPAnN+csM/XFgqcr6LO2uOlY/zUgqafsDrEWLNil9ULJTVtUf2dtCX+5aNTMFEwHQYDVR0OBBYEFMDyeWsZ6Dz+srx9z5IqLpHIMAiCMB8GA1UdIwQYMBaAFMDyeWsZ6Dz+srx9z5IqLpHIMAiCMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSQAwRgIhAM2OMmSo4CQP2ShuGEAUIckWtmpNjKuW90kWP7fCfohnAiEA9ep85tkn4Thn5Z/4QlSlo82oNiAoDBkQFwlFzU1+Arg=";

    /// Decrypts an `encryptedContent` as a subscriber does.
    fn decrypt(ec: &Value) -> Value {
        let s = |k: &str| B64.decode(ec[k].as_str().expect("field")).expect("base64");
        let der = B64.decode(pem_block("PRIVATE KEY")).expect("pem");
        let key = RsaPrivateKey::from_pkcs8_der(&der).expect("key");
        let sym = key
            .decrypt(Oaep::new::<Sha1>(), &s("dataKey"))
            .expect("unwrap");
        assert_eq!(sym.len(), 32);
        let data = s("data");
        let mut mac = Hmac::<Sha256>::new_from_slice(&sym).expect("hmac");
        mac.update(&data);
        mac.verify_slice(&s("dataSignature")).expect("signature");
        let dec = cbc::Decryptor::<Aes256>::new_from_slices(&sym, &sym[..16]).expect("aes");
        let mut buf = data.clone();
        let plain = dec.decrypt_padded_mut::<Pkcs7>(&mut buf).expect("padding");
        serde_json::from_slice(plain).expect("json")
    }

    #[test]
    fn round_trip() {
        let cert = pem_block("CERTIFICATE");
        let e = Encryption::from_request(Some(&cert), Some("cert-1")).expect("accepted");
        assert_eq!(e.thumbprint, CERT_2048_SHA1);
        let resource = json!({"id": "1", "body": {"contentType": "html", "content": "<p>hé</p>"}});
        let ec = e.encrypt(&resource).expect("encrypt");
        assert_eq!(ec["encryptionCertificateId"], "cert-1");
        assert_eq!(ec["encryptionCertificateThumbprint"], CERT_2048_SHA1);
        assert_eq!(decrypt(&ec), resource);
        // A fresh key each time.
        let ec2 = e.encrypt(&resource).expect("encrypt");
        assert_ne!(ec["data"], ec2["data"]);
    }

    #[test]
    fn refusals() {
        let cert = pem_block("CERTIFICATE");
        let cert = cert.as_str();
        let err =
            |c: Option<&str>, i: Option<&str>| Encryption::from_request(c, i).expect_err("refused");
        assert!(err(None, Some("x")).contains("encryptionCertificate is a required"));
        assert!(err(Some(" "), Some("x")).contains("encryptionCertificate is a required"));
        assert!(err(Some(cert), None).contains("encryptionCertificateId is a required"));
        let long = "x".repeat(129);
        assert!(err(Some(cert), Some(&long)).contains("at most 128"));
        assert!(Encryption::from_request(Some(cert), Some(&"x".repeat(128))).is_ok());
        assert!(err(Some("%%%"), Some("x")).contains("base64"));
        assert!(err(Some("aGVsbG8="), Some("x")).contains("X.509"));
        assert!(err(Some(CERT_1024), Some("x")).contains("2048 to 4096"));
        assert!(err(Some(CERT_EC), Some("x")).contains("2048 to 4096"));
        // Line-wrapped base64 is accepted.
        let wrapped: String = cert
            .as_bytes()
            .chunks(64)
            .map(|c| format!("{}\n", String::from_utf8_lossy(c)))
            .collect();
        assert!(Encryption::from_request(Some(&wrapped), Some("x")).is_ok());
    }
}
