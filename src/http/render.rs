//! The answer of `GET /auth`, written by hand.
//!
//! Validation is the hot path, and going through serde for its answer cost a fifth of a
//! validation's instructions (callgrind): escaping every string byte by byte, growing the buffer
//! twice, allocating a copy of the owner and of the key's fields. Here the buffer is sized once,
//! nothing is copied first, and only strings that need it (a user agent with quotes or
//! non-ASCII) go through serde_json's escaping. A property test checks that the bytes are
//! exactly what serde would write for `Envelope<Validated>`.

use std::io::Write;
use std::net::IpAddr;

use uuid::Uuid;

use crate::domain::time::RFC3339_LEN;
use crate::domain::{Timestamp, User};
use crate::service::keys::UsageSnapshot;

/// How every answer starts, up to the owner's id.
const START: &[u8] = br#"{"success":true,"data":{"user":{"id":"#;

/// The part of a validation answer that never changes for a key: the envelope's start, the
/// owner and the key's id and creation, `{"success":true,"data":{"user":{…},"key":{"id":…,
/// "created":…`. Kept with the cached key (`KeyEntry::answer_head`), so that a validation
/// writes only the key's use (three fields that change with every request); it also holds the
/// owner's id as the `X-Auth-User-Id` header needs it ([`head_user_id`]).
pub fn head(user: &User, key_id: Uuid, created: Timestamp) -> Box<[u8]> {
    let mut out = Vec::with_capacity(224 + user.name.as_str().len());
    out.extend_from_slice(START);
    uuid(&mut out, user.id);
    out.extend_from_slice(br#","name":"#);
    string(&mut out, user.name.as_str());
    out.extend_from_slice(br#","role":""#);
    out.extend_from_slice(user.role.as_str().as_bytes());
    out.extend_from_slice(br#"","created":"#);
    timestamp(&mut out, user.created);
    out.extend_from_slice(br#"},"key":{"id":"#);
    uuid(&mut out, key_id);
    out.extend_from_slice(br#","created":"#);
    timestamp(&mut out, created);
    out.into_boxed_slice()
}

/// The owner's id, hyphenated, as written in a [`head`].
pub fn head_user_id(head: &[u8]) -> &[u8] {
    let at = START.len() + 1; // after the opening quote
    head.get(at..at + 36).unwrap_or_default()
}

/// `{"success":true,"data":{"user":…,"key":{…,"current":true}},"error":null}`: the envelope
/// of `Validated`, byte for byte as serde_json writes it, from the key's [`head`] and its use.
pub fn validated(head: &[u8], usage: &UsageSnapshot) -> Vec<u8> {
    let agent_len = usage.user_agent.as_deref().map_or(0, str::len);
    // Three timestamps, an address and the fixed text fit in 160 bytes; an escaped agent in at
    // most 6× its length.
    let mut out = Vec::with_capacity(head.len() + 160 + agent_len * 6);
    out.extend_from_slice(head);
    out.extend_from_slice(br#","expires":"#);
    timestamp(&mut out, usage.expires);
    out.extend_from_slice(br#","last_used":"#);
    match usage.last_used {
        Some(t) => timestamp(&mut out, t),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(br#","last_ip":"#);
    match usage.last_ip {
        Some(ip) => ip_address(&mut out, ip),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(br#","user_agent":"#);
    match usage.user_agent.as_deref() {
        Some(agent) => string(&mut out, agent),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(br#","current":true}},"error":null}"#);
    out
}

/// A JSON string: as it is when nothing in it needs escaping (usernames always, most user
/// agents), else through serde_json's escaping. Writing to a Vec cannot fail.
fn string(out: &mut Vec<u8>, s: &str) {
    if s.bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f)
    {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"null");
    }
}

fn uuid(out: &mut Vec<u8>, id: Uuid) {
    let mut buf = Uuid::encode_buffer();
    out.push(b'"');
    out.extend_from_slice(id.hyphenated().encode_lower(&mut buf).as_bytes());
    out.push(b'"');
}

fn timestamp(out: &mut Vec<u8>, t: Timestamp) {
    let mut buf = [0u8; RFC3339_LEN];
    out.push(b'"');
    out.extend_from_slice(t.rfc3339_bytes(&mut buf));
    out.push(b'"');
}

fn ip_address(out: &mut Vec<u8>, ip: IpAddr) {
    out.push(b'"');
    match ip {
        // The common case by hand: `write!` costs a thousand instructions for four numbers.
        IpAddr::V4(v4) => {
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(digits.format(octet).as_bytes());
            }
        }
        // Hex digits and colons: nothing to escape. Writing to a Vec cannot fail.
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::domain::{Role, Username};
    use crate::http::envelope::Envelope;
    use crate::service::keys::KeyView;

    use crate::http::routes::auth::Validated;

    fn ts() -> impl Strategy<Value = Timestamp> {
        (-62_167_219_200_000i64..253_402_300_799_999).prop_map(Timestamp::from_millis)
    }

    fn ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u16; 8]>().prop_map(IpAddr::from),
        ]
    }

    proptest! {
        /// The hand-written answer is exactly serde's, for any owner and any use.
        #[test]
        fn same_bytes_as_serde(
            user_id in any::<u128>(), name in "[A-Za-z0-9_]{3,20}", admin in any::<bool>(), user_created in ts(),
            key_id in any::<u128>(), created in ts(), expires in ts(),
            last_used in proptest::option::of(ts()), last_ip in proptest::option::of(ip()),
            user_agent in proptest::option::of("\\PC{0,40}|[\\x00-\\x7f]{0,40}"),
        ) {
            let user = User {
                id: Uuid::from_u128(user_id),
                name: Username::parse(&name).unwrap(),
                role: if admin { Role::Admin } else { Role::User },
                created: user_created,
            };
            let usage = UsageSnapshot { expires, last_used, last_ip, user_agent: user_agent.as_deref().map(Arc::from) };
            let head = head(&user, Uuid::from_u128(key_id), created);
            let id = user.id.hyphenated().to_string();
            prop_assert_eq!(head_user_id(&head), id.as_bytes());
            let ours = validated(&head, &usage);
            let key = KeyView {
                id: Uuid::from_u128(key_id),
                created,
                expires,
                last_used,
                last_ip: last_ip.map(|ip| ip.to_string()),
                user_agent: user_agent.clone(),
                current: true,
            };
            let serde = serde_json::to_vec(&Envelope::ok(Validated { user, key })).unwrap();
            prop_assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(serde).unwrap());
        }
    }
}
