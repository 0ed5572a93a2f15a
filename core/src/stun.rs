//! Just enough STUN (RFC 5389) to route a datagram from an address camgate has not seen yet.
//!
//! Every viewer shares one UDP port. A browser's first datagram from a new address is always
//! an ICE connectivity check: a STUN Binding request whose USERNAME is
//! `<camgate's ufrag>:<browser's ufrag>`. Reading that ufrag finds the viewer with one map
//! lookup, so a flood of datagrams from unknown addresses costs the same whatever the number
//! of viewers (instead of asking every viewer's WebRTC stack in turn).

const HEADER: usize = 20;
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const BINDING_REQUEST: u16 = 0x0001;
const USERNAME: u16 = 0x0006;

/// The local (camgate's) ufrag named by a STUN Binding request, if `data` is one.
pub fn local_ufrag(data: &[u8]) -> Option<&str> {
    if data.len() < HEADER || data[4..8] != MAGIC_COOKIE {
        return None;
    }
    if u16::from_be_bytes([data[0], data[1]]) != BINDING_REQUEST {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let body = data.get(HEADER..HEADER + length)?;
    let mut rest = body;
    while rest.len() >= 4 {
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let value = rest.get(4..4 + len)?;
        if kind == USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split_once(':').map(|(local, _)| local);
        }
        // Attributes are padded to 4 bytes.
        let padded = (len + 3) & !3;
        rest = rest.get(4 + padded..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Binding request as Chromium sends it (attributes after USERNAME trimmed).
    fn binding_request(username: &str) -> Vec<u8> {
        let mut attrs = Vec::new();
        // PRIORITY first, as browsers do.
        attrs.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 0x6e, 0x7f, 0x1e, 0xff]);
        attrs.extend_from_slice(&USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username.as_bytes());
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut msg = vec![0x00, 0x01];
        msg.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        msg.extend_from_slice(&MAGIC_COOKIE);
        msg.extend_from_slice(&[7; 12]);
        msg.extend_from_slice(&attrs);
        msg
    }

    #[test]
    fn the_local_ufrag_of_a_binding_request() {
        assert_eq!(local_ufrag(&binding_request("aB3d:xyZ9")), Some("aB3d"));
        assert_eq!(local_ufrag(&binding_request("abc:de")), Some("abc"));
        assert_eq!(local_ufrag(&binding_request("nocolon")), None);
    }

    #[test]
    fn anything_else_is_none() {
        let mut response = binding_request("a:b");
        response[1] = 0x01;
        response[0] = 0x01; // Binding success response
        assert_eq!(local_ufrag(&response), None);
        assert_eq!(local_ufrag(&[0x80, 0x60, 0, 1, 0, 0, 0, 0]), None, "RTP");
        assert_eq!(local_ufrag(&[22, 254, 253, 0, 0]), None, "DTLS");
        assert_eq!(local_ufrag(&[]), None);
        // Lengths that run past the end, at every cut.
        let full = binding_request("ufrag:peer");
        for cut in 0..full.len() {
            assert_eq!(local_ufrag(&full[..cut]), None, "cut at {cut}");
        }
        // Any bytes at all: never a panic (a cheap stand-in for fuzzing this 30-line parser).
        let mut x: u32 = 12345;
        for _ in 0..20_000 {
            let mut data = full.clone();
            for _ in 0..3 {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let i = (x >> 8) as usize % data.len();
                data[i] = (x >> 20) as u8;
            }
            let _ = local_ufrag(&data);
        }
    }
}
