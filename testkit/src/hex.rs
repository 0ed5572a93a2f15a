//! Test inputs written as hex (fuzzer finds, captured packets).

/// Decodes a string of hex digit pairs; panics on anything else (test inputs are literals).
pub fn decode(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd number of hex digits");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digits"))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes() {
        assert_eq!(super::decode("00ff7C"), vec![0, 0xFF, 0x7C]);
        assert!(super::decode("").is_empty());
    }
}
