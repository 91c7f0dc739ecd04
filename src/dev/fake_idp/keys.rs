//! Signing keys: real 2048-bit RSA keys, a key set per issuer with rotation, and JWT assembly.
//!
//! Generating an RSA key takes a noticeable time (much more in debug builds), and the tests
//! start hundreds of fakes, so keys come from a small pool generated once per process and
//! shared; each issuer publishes them under `kid`s of its own, so two fakes never publish the
//! same `kid`. Within one fake, every issuer (and each rotation, while the pool lasts) gets a
//! key that no other issuer of that fake uses, so a token signed by one issuer never verifies
//! with another one's key.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use anyhow::{Context, anyhow};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

/// How many distinct keys one process generates at most.
const POOL_SIZE: usize = 6;

static POOL: [OnceLock<Result<PoolKey, String>>; POOL_SIZE] = [
    OnceLock::new(),
    OnceLock::new(),
    OnceLock::new(),
    OnceLock::new(),
    OnceLock::new(),
    OnceLock::new(),
];
static NEXT: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A generated key and what is derived from it once.
struct PoolKey {
    encoding: EncodingKey,
    /// base64url of the modulus and exponent, as in a JWK.
    n: String,
    e: String,
    public_pem: String,
}

impl PoolKey {
    fn generate() -> anyhow::Result<PoolKey> {
        let private = RsaPrivateKey::new(&mut Rng, 2048).context("generating an RSA key")?;
        let pem = private
            .to_pkcs1_pem(LineEnding::LF)
            .context("encoding the RSA key as PEM")?;
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).context("loading the RSA key")?;
        let public = private.to_public_key();
        let public_pem = public
            .to_public_key_pem(LineEnding::LF)
            .context("encoding the public key as PEM")?;
        Ok(PoolKey {
            encoding,
            n: URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            e: URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
            public_pem,
        })
    }
}

/// The pool's key number `index`, generated on first use.
fn pool_key(index: usize) -> anyhow::Result<&'static PoolKey> {
    POOL[index % POOL_SIZE]
        .get_or_init(|| PoolKey::generate().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow!("{e}"))
}

/// A pool slot that none of `taken` uses (any slot once every one is taken).
fn allocate(taken: &[usize]) -> usize {
    for _ in 0..POOL_SIZE {
        let slot = NEXT.fetch_add(1, Ordering::Relaxed) % POOL_SIZE;
        if !taken.contains(&slot) {
            return slot;
        }
    }
    NEXT.fetch_add(1, Ordering::Relaxed) % POOL_SIZE
}

/// The pool slots that the issuers of one fake use, so that a rotation picks another.
#[derive(Default)]
pub(crate) struct Slots(Mutex<Vec<usize>>);

impl Slots {
    fn take(&self) -> usize {
        let mut taken = lock(&self.0);
        let slot = allocate(&taken);
        taken.push(slot);
        slot
    }
}

struct PublishedKey {
    kid: String,
    key: &'static PoolKey,
}

impl PublishedKey {
    fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "n": self.key.n,
            "e": self.key.e,
        })
    }
}

/// The keys one issuer publishes; the newest one signs. Rotation adds a key and keeps the old
/// ones published, as real issuers do, so tokens signed before still verify.
pub struct KeySet {
    /// `kid`s are `{prefix}-{n}`, n counting from 0.
    prefix: String,
    keys: Mutex<Keys>,
}

struct Keys {
    /// Published before `current`, oldest first.
    older: Vec<PublishedKey>,
    current: PublishedKey,
}

impl KeySet {
    /// A key set with one key, taken from the pool.
    pub(crate) fn new(prefix: String, slots: &Slots) -> anyhow::Result<KeySet> {
        let first = PublishedKey {
            kid: format!("{prefix}-0"),
            key: pool_key(slots.take())?,
        };
        Ok(KeySet {
            prefix,
            keys: Mutex::new(Keys {
                older: Vec::new(),
                current: first,
            }),
        })
    }

    fn with_current<T>(&self, f: impl FnOnce(&PublishedKey) -> T) -> T {
        f(&lock(&self.keys).current)
    }

    /// The `kid` that signs now.
    pub fn current_kid(&self) -> String {
        self.with_current(|key| key.kid.clone())
    }

    /// The signing key's public half as PEM (SPKI).
    pub fn public_key_pem(&self) -> String {
        self.with_current(|key| key.key.public_pem.clone())
    }

    /// The JWKS document: every key published so far.
    pub fn jwks(&self) -> Value {
        let keys = lock(&self.keys);
        let published: Vec<Value> = keys
            .older
            .iter()
            .chain([&keys.current])
            .map(PublishedKey::jwk)
            .collect();
        json!({ "keys": published })
    }

    /// Publishes a new key, which signs from now on; the old ones stay published. Returns the
    /// new `kid`.
    pub(crate) fn rotate(&self, slots: &Slots) -> anyhow::Result<String> {
        let key = pool_key(slots.take())?;
        let mut keys = lock(&self.keys);
        let kid = format!("{}-{}", self.prefix, keys.older.len() + 1);
        let new = PublishedKey {
            kid: kid.clone(),
            key,
        };
        let old = std::mem::replace(&mut keys.current, new);
        keys.older.push(old);
        Ok(kid)
    }

    /// Signs `claims` with RS256 under the current `kid`.
    pub fn sign(&self, claims: &Value) -> anyhow::Result<String> {
        let header = json!({ "alg": "RS256", "typ": "JWT", "kid": self.current_kid() });
        self.sign_with_header(&header, claims)
    }

    /// Signs with RS256 and the current key, whatever `header` says (for hostile headers).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> anyhow::Result<String> {
        let signing_input = format!("{}.{}", segment(header), segment(claims));
        let signature = self.with_current(|key| {
            jsonwebtoken::crypto::sign(
                signing_input.as_bytes(),
                &key.key.encoding,
                Algorithm::RS256,
            )
        })?;
        Ok(format!("{signing_input}.{signature}"))
    }
}

/// base64url of the JSON of `value`, as in a JWT.
pub fn segment(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// A token with the given header and claims and no signature (for `alg: none`).
pub fn unsigned(header: &Value, claims: &Value) -> String {
    format!("{}.{}.", segment(header), segment(claims))
}

/// `rsa` 0.9 wants a `rand_core` 0.6 RNG; this one draws from `rand`'s thread RNG (a CSPRNG).
struct Rng;

impl rsa::rand_core::RngCore for Rng {
    fn next_u32(&mut self) -> u32 {
        rand::random()
    }
    fn next_u64(&mut self) -> u64 {
        rand::random()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        rand::fill(dest);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        rand::fill(dest);
        Ok(())
    }
}

impl rsa::rand_core::CryptoRng for Rng {}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    fn verify_with_jwks(jwt: &str, jwks: &Value) -> anyhow::Result<Value> {
        let kid = jsonwebtoken::decode_header(jwt)?.kid.context("no kid")?;
        let jwk = jwks["keys"]
            .as_array()
            .context("no keys")?
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .context("kid not published")?;
        let key = DecodingKey::from_rsa_components(
            jwk["n"].as_str().context("n")?,
            jwk["e"].as_str().context("e")?,
        )?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        Ok(jsonwebtoken::decode::<Value>(jwt, &key, &validation)?.claims)
    }

    #[test]
    fn rotation_publishes_a_new_key_and_keeps_the_old_one() -> anyhow::Result<()> {
        let slots = Slots::default();
        let keys = KeySet::new("fake-test-rotation".to_owned(), &slots)?;
        let before = keys.sign(&json!({ "n": 1 }))?;
        let old_kid = keys.current_kid();

        let new_kid = keys.rotate(&slots)?;
        let after = keys.sign(&json!({ "n": 2 }))?;

        assert_eq!(old_kid, "fake-test-rotation-0");
        assert_eq!(new_kid, "fake-test-rotation-1");
        assert_eq!(keys.current_kid(), new_kid);
        let jwks = keys.jwks();
        assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2));
        assert_eq!(verify_with_jwks(&before, &jwks)?["n"], 1);
        assert_eq!(verify_with_jwks(&after, &jwks)?["n"], 2);
        assert_ne!(
            jwks["keys"][0]["n"], jwks["keys"][1]["n"],
            "a rotation brings another RSA key"
        );
        Ok(())
    }

    #[test]
    fn the_issuers_of_one_fake_never_share_a_key() -> anyhow::Result<()> {
        let slots = Slots::default();
        let sets = (0..3)
            .map(|i| KeySet::new(format!("fake-test-share-{i}"), &slots))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let moduli: std::collections::HashSet<String> = sets
            .iter()
            .map(|s| {
                s.jwks()["keys"][0]["n"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert_eq!(moduli.len(), 3);
        Ok(())
    }

    #[test]
    fn keys_are_real_2048_bit_rsa_keys() -> anyhow::Result<()> {
        let keys = KeySet::new("fake-test-size".to_owned(), &Slots::default())?;
        let n = keys.jwks()["keys"][0]["n"]
            .as_str()
            .context("n")?
            .to_owned();
        assert_eq!(URL_SAFE_NO_PAD.decode(n)?.len(), 256);
        assert!(
            keys.public_key_pem()
                .starts_with("-----BEGIN PUBLIC KEY-----")
        );
        Ok(())
    }
}
