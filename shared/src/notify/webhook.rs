//! The generic webhook: Greenlight's JSON body, its event and delivery id in headers, and
//! optionally an HMAC-SHA256 signature of the raw body.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The header holding the signature: `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Greenlight-Signature";
/// The header holding the event name.
pub const EVENT_HEADER: &str = "X-Greenlight-Event";
/// The header holding the notification's id (the body's `id`).
pub const DELIVERY_HEADER: &str = "X-Greenlight-Delivery";

/// `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any size");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_value() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
