//! Recorded RTP captures (`core/tests/data/*/*.rtp`).

/// Splits a capture in RFC 4571 framing (a 2-byte big-endian length, then one RTP packet) into
/// its packets; panics on a truncated or trailing record (the captures are test data).
pub fn rfc4571_packets(data: &[u8]) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    let mut rest = data;
    while let [hi, lo, tail @ ..] = rest {
        let n = usize::from(u16::from_be_bytes([*hi, *lo]));
        let (packet, next) = tail.split_at_checked(n).expect("truncated RTP record");
        packets.push(packet.to_vec());
        rest = next;
    }
    assert!(rest.is_empty(), "trailing byte after the last RTP record");
    packets
}

#[cfg(test)]
mod tests {
    #[test]
    fn splits_records() {
        let data = [0, 2, 0xAA, 0xBB, 0, 0, 0, 1, 0xCC];
        assert_eq!(
            super::rfc4571_packets(&data),
            vec![vec![0xAA, 0xBB], vec![], vec![0xCC]]
        );
        assert!(std::panic::catch_unwind(|| super::rfc4571_packets(&[0, 5, 1])).is_err());
    }
}
