//! Panel passwords: argon2id (PHC strings) for every new hash, and the Werkzeug formats
//! FabOMatic stored (`pbkdf2:sha256:<iterations>$salt$hex`, `scrypt:n:r:p$salt$hex`) so
//! imported members can still log in; those are re-hashed to argon2id at their next login.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use subtle::ConstantTimeEq;

/// How a stored hash checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Wrong,
    /// Right, and the hash is current.
    Ok,
    /// Right, but stored in a legacy format: store `hash(password)` instead.
    OkRehash,
}

/// argon2id with the crate's defaults (OWASP: m = 19 MiB, t = 2, p = 1).
pub fn hash(password: &str) -> String {
    let salt = SaltString::encode_b64(&crate::broker::random_bytes(16)).expect("16 bytes encode");
    let hashed = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters never fails")
        .to_string();
    give_back_memory();
    hashed
}

/// glibc keeps argon2's freed 19 MiB block in the heap (research/deps.md §8): on a 512 MB
/// Pi that is a quarter of the daemon's budget for nothing. Hand it back to the OS.
pub(crate) fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory held by the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Checks a password against any stored format. Unknown formats never verify.
pub fn verify(stored: &str, password: &str) -> Verdict {
    if stored.starts_with("$argon2") {
        return match PasswordHash::new(stored) {
            Ok(h)
                if Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok() =>
            {
                Verdict::Ok
            }
            _ => Verdict::Wrong,
        };
    }
    if werkzeug(stored, password) {
        Verdict::OkRehash
    } else {
        Verdict::Wrong
    }
}

/// Werkzeug's `generate_password_hash` formats: `method$salt$hexdigest`, the salt used as
/// its ASCII bytes.
fn werkzeug(stored: &str, password: &str) -> bool {
    let mut parts = stored.splitn(3, '$');
    let (Some(method), Some(salt), Some(hex_hash)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_hash) else {
        return false;
    };
    let args: Vec<&str> = method.split(':').collect();
    let derived = match args.as_slice() {
        ["pbkdf2", "sha256", iterations] => {
            let Ok(n) = iterations.parse::<u32>() else {
                return false;
            };
            // Werkzeug's lowest default was 150,000; refuse silly values (DoS or weak).
            if !(1_000..=10_000_000).contains(&n) {
                return false;
            }
            let mut out = vec![0u8; expected.len().clamp(1, 64)];
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt.as_bytes(), n, &mut out);
            out
        }
        ["pbkdf2", "sha256"] => {
            let mut out = vec![0u8; expected.len().clamp(1, 64)];
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
                password.as_bytes(),
                salt.as_bytes(),
                260_000,
                &mut out,
            );
            out
        }
        ["scrypt", n, r, p] => {
            let (Ok(n), Ok(r), Ok(p)) = (n.parse::<u64>(), r.parse::<u32>(), p.parse::<u32>())
            else {
                return false;
            };
            // Memory is 128 * r * n bytes: cap it at 64 MiB on a 512 MB Pi.
            if !n.is_power_of_two() || n < 2 || r == 0 || p == 0 || 128 * r as u64 * n > 64 << 20 {
                return false;
            }
            let Ok(params) =
                scrypt::Params::new(n.trailing_zeros() as u8, r, p, expected.len().clamp(10, 64))
            else {
                return false;
            };
            let mut out = vec![0u8; expected.len().clamp(10, 64)];
            if scrypt::scrypt(password.as_bytes(), salt.as_bytes(), &params, &mut out).is_err() {
                return false;
            }
            out
        }
        _ => return false,
    };
    derived.len() == expected.len() && bool::from(derived.ct_eq(&expected))
}

/// Writes a file only its owner can read (0600 from the start, never a moment 0644),
/// replacing what was there.
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An older file keeps its mode through `open`: tighten it.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Creates a file only its owner can read, failing if it exists (two processes making
/// the same key at once: the loser reads the winner's).
pub fn create_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    };
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// A readable random password for first logins and resets (no look-alike characters).
pub fn generate() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXY346789";
    crate::broker::random_bytes(14)
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_round_trip() {
        let h = hash("s3cret!");
        assert!(h.starts_with("$argon2id$"));
        assert_eq!(verify(&h, "s3cret!"), Verdict::Ok);
        assert_eq!(verify(&h, "s3cret"), Verdict::Wrong);
    }

    #[test]
    fn werkzeug_hashes_verify_and_ask_for_a_rehash() {
        // Vectors computed with Python's hashlib, as Werkzeug does:
        // generate_password_hash("admin", "pbkdf2:sha256:600000") (FabOMatic's format) and
        // generate_password_hash("admin") with Werkzeug >= 3 (scrypt:32768:8:1).
        let pbkdf2 = "pbkdf2:sha256:600000$PIeuM3M7ZG3k6Akz$b5423dcef824986468be4d88d31d98b70fa441cdb8ca9838c099f8390b671f41";
        assert_eq!(verify(pbkdf2, "admin"), Verdict::OkRehash);
        assert_eq!(verify(pbkdf2, "Admin"), Verdict::Wrong);
        let scrypt = "scrypt:32768:8:1$Xq3pLm9sRt2vWz8K$5fdfee5a230e2ee7c493044068eaf84e801f7fabe6a8a0f8f395d7f9577189596c87346f33049c51ba7eca489672ae90e5f543aea8c6a277d920d5f735e65d67";
        assert_eq!(verify(scrypt, "admin"), Verdict::OkRehash);
        assert_eq!(verify(scrypt, "admin "), Verdict::Wrong);
    }

    #[test]
    fn malformed_hashes_never_verify() {
        for stored in [
            "",
            "plain",
            "pbkdf2:sha256:10$s$zz",
            "pbkdf2:md5:1000$s$00",
            "scrypt:3:8:1$s$00",
            "$argon2id$garbage",
            "pbkdf2:sha256:99999999999$s$00",
        ] {
            assert_eq!(verify(stored, ""), Verdict::Wrong, "{stored}");
        }
    }

    #[test]
    fn generated_passwords_are_long_and_distinct() {
        let (a, b) = (generate(), generate());
        assert_eq!(a.len(), 14);
        assert_ne!(a, b);
    }
}
